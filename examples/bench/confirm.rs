//! 3. `sender --confirm` to 1000 pods, without and with loss.

use super::*;

impl Bench {
    // -----------------------------------------------------------------------
    // 3. sender --confirm. Runs after receiver_bench: the one receiver gets
    // the burst of 1000 datagrams, so it needs the raised rmem_max too.

    pub(crate) fn confirm_bench(&mut self) -> Res<()> {
        let send = format!("{} -s {SERVICE} -m test-{{run}}", self.exe("sender"));
        self.write_pods(1000)?;
        self.start_dns(1000)?;
        let confirm_log = self.tmp.join("confirm.log");
        let receiver = self.ns(&self.exe("receiver"));
        let receiver = self.spawn(receiver, &confirm_log, Path::new("/dev/null"))?;
        // Signed (--key-file): a second receiver, with the key, on the next
        // port, so signed and unsigned runs take turns.
        let key = self.tmp.join("keys");
        write(&key, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n")?;
        let keyed = format!("--key-file {}", key.display());
        let signed_port = PORT + 1;
        let receiver_line = format!("{} -p {signed_port} {keyed}", self.exe("receiver"));
        let signed_log = self.tmp.join("confirm-signed.log");
        let signed_receiver = self.ns(&receiver_line);
        let signed_receiver = self.spawn(signed_receiver, &signed_log, Path::new("/dev/null"))?;
        log("sender --confirm: 1000 pods, no loss (unsigned and signed), then 10% loss each way");
        let (warmup, runs) = (self.s.sender_warmup, self.s.confirm_runs);
        let named = [
            ("plain", send.clone()),
            ("confirm", format!("{send} --confirm")),
            (
                "signed",
                format!("{send} --confirm -p {signed_port} {keyed}"),
            ),
        ];
        // A plain run leaves the one receiver about 4 ms of logging (1000
        // lines): the run after it must not wait for that.
        let settle = Duration::from_millis(20);
        self.alternate("confirm.json", (warmup, runs), settle, &named)?;
        let drop = "-m statistic --mode random --probability 0.1 -j DROP";
        for rule in ["--dport", "--sport"] {
            output(&mut self.ns(&format!("iptables -A INPUT -p udp {rule} {PORT} {drop}")))?;
        }
        let named = [("loss", format!("{send} --confirm --timeout 10s"))];
        self.alternate("confirm-loss.json", (0, runs), settle, &named)?;
        // The relay's sinks listen on the same port: they must lose nothing.
        for rule in ["--dport", "--sport"] {
            output(&mut self.ns(&format!("iptables -D INPUT -p udp {rule} {PORT} {drop}")))?;
        }
        self.stop(receiver)?;
        self.stop(signed_receiver)?;
        self.stop_dns()?;
        // A sender run's datagrams all come from one port and carry the
        // run's name: a line logged twice repeats all after the timestamp.
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let text = read(&confirm_log);
        for line in text.lines() {
            *seen.entry(line.get(23..).unwrap_or(line)).or_default() += 1;
        }
        let duplicates = seen.values().filter(|&&n| n > 1).count();
        write(
            &self.results.join("confirm-duplicates"),
            format!("{duplicates}\n"),
        )
    }
}

/// 3.: `sender --confirm`; its targets go to `t`.
pub fn confirm_table(results: &Path, t: &mut String) -> Res<String> {
    let mut o = String::new();
    let mut confirm: HashMap<String, Vec<f64>> = HashMap::new();
    for name in ["confirm.json", "confirm-loss.json"] {
        confirm.extend(read_times(&results.join(name))?);
    }
    let confirm_times = |who: &str| confirm.get(who).cloned().unwrap_or_default();
    o += "### sender --confirm, 1000 pods (ms, start to exit)\n\n";
    o += "| | median | min-max | / plain |\n|---|---:|---:|---:|\n";
    let plain = median(&confirm_times("plain"));
    for (who, label) in [
        ("plain", "plain broadcast"),
        ("confirm", "`--confirm`, no loss"),
        ("signed", "`--confirm --key-file` (signed), no loss"),
        ("loss", "`--confirm`, 10% loss each way: all 1000 confirmed"),
    ] {
        let t = confirm_times(who);
        let (m, r) = spread(&t, 1000.0, if who == "loss" { 0 } else { 1 });
        let ratio = if who == "loss" {
            String::new()
        } else {
            format!("{:.2}x", median(&t) / plain)
        };
        let _ = writeln!(o, "| {label} | {m} | {r} | {ratio} |");
    }
    let duplicates: u64 = read(results.join("confirm-duplicates"))
        .trim()
        .parse()
        .unwrap_or(0);
    let _ = writeln!(
        o,
        "\nLines logged twice by the receiver over all runs: {duplicates}.\n"
    );

    let ratio = median(&confirm_times("confirm")) / plain;
    let _ = writeln!(
        t,
        "- sender --confirm, 1000 pods, no loss: {ratio:.2}x a plain broadcast (target at most 2x): {}",
        verdict(ratio <= 2.0)
    );
    let signed = median(&confirm_times("signed")) / median(&confirm_times("confirm"));
    let _ = writeln!(
        t,
        "- signed sender --confirm, 1000 pods: {signed:.2}x an unsigned --confirm (target at most 1.2x): {}",
        verdict(signed <= 1.2)
    );
    let _ = writeln!(
        t,
        "- sender --confirm: no line logged twice: {}",
        verdict(duplicates == 0)
    );
    Ok(o)
}
