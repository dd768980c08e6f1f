//! Timing runs side by side: contestants take turns, round by round.

use super::*;

/// `--alternate JSON WARMUP RUNS SETTLE_MS SINK NAME COMMAND [NAME COMMAND]...`:
/// times the contestants taking turns, WARMUP rounds unrecorded, then RUNS
/// rounds, pausing SETTLE_MS (untimed) after each run; writes each one's
/// times to JSON. Timing them in blocks (all runs of one, then the next)
/// measured the machine's drift between blocks.
pub fn alternate(json: &str, counts: [&str; 3], sink: &str, pairs: &[&str]) -> Res<()> {
    let number = |n: &str| {
        n.parse::<usize>()
            .map_err(|_| format!("'{n}': not a count"))
    };
    let [warmup, runs, settle] = counts;
    let (warmup, runs, settle) = (number(warmup)?, number(runs)?, number(settle)?);
    if pairs.is_empty() || pairs.len() % 2 == 1 {
        return Err("expected NAME COMMAND pairs".into());
    }
    let named: Vec<(&str, &str)> = pairs.chunks(2).map(|p| (p[0], p[1])).collect();
    if let Some((name, _)) = named.iter().find(|(n, _)| n.contains(['"', '\\'])) {
        return Err(format!("{name}: a name without quotes or backslashes"));
    }
    let mut times = vec![vec![]; named.len()];
    for round in 0..warmup + runs {
        for i in turns(round, named.len()) {
            let (name, line) = named[i];
            // `{run}` names the run in its command: a sender's message then
            // tells its run's lines from another's that drew the same port.
            let line = line.replace("{run}", &format!("{name}{round}"));
            let t = time_run(&line, Path::new(sink)).map_err(|e| format!("{name}: {e}"))?;
            if round >= warmup {
                times[i].push(t);
            }
            sleep(Duration::from_millis(settle as u64));
        }
    }
    let results: Vec<(String, Vec<f64>)> = named
        .iter()
        .map(|(name, _)| name.to_string())
        .zip(times)
        .collect();
    write(Path::new(json), times_json(&results))
}

/// Round `round`'s order of `n` contestants: each goes first in turn, and
/// each runs right after every other one equally often (a Williams design:
/// 0, 1, n-1, 2, n-2, ... shifted by the round; for odd n every other cycle
/// backwards). Then no contestant always inherits what the same one leaves
/// behind (a DNS server's forked child still exiting, say).
pub fn turns(round: usize, n: usize) -> impl Iterator<Item = usize> {
    let williams = move |i: usize| {
        if i % 2 == 1 {
            i.div_ceil(2)
        } else {
            (n - i / 2) % n
        }
    };
    let backwards = n % 2 == 1 && (round / n) % 2 == 1;
    (0..n).map(move |i| (williams(if backwards { n - 1 - i } else { i }) + round) % n)
}

/// One run of a command (words split at spaces; a last word `<FILE` is its
/// stdin, else none), stdout and stderr to `sink`: seconds from spawn to exit.
pub fn time_run(line: &str, sink: &Path) -> Res<f64> {
    let (line, stdin) = match line.rsplit_once(" <") {
        Some((line, path)) => {
            let input = fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
            (line, Stdio::from(input))
        }
        None => (line, Stdio::null()),
    };
    // Truncated for each run, as hyperfine's --output did.
    let out = file(sink)?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut command = cmd(line);
    command.stdin(stdin).stdout(out).stderr(err);
    let start = Instant::now();
    let mut child = command.spawn().map_err(|e| format!("{line}: {e}"))?;
    // Blocking, not `wait`: its polling would add up to 20 ms to the time.
    let status = child.wait().map_err(|e| format!("{line}: {e}"))?;
    let seconds = start.elapsed().as_secs_f64();
    if !status.success() {
        let output = read(sink);
        let last: Vec<&str> = output.lines().rev().take(3).collect();
        let last: Vec<&str> = last.into_iter().rev().collect();
        return Err(format!("`{line}` failed ({status}): {}", last.join("\n")));
    }
    Ok(seconds)
}

/// Times per command in the shape of hyperfine's --export-json, which
/// `read_times` reads (names hold no quotes).
pub fn times_json(results: &[(String, Vec<f64>)]) -> String {
    let results: Vec<String> = results
        .iter()
        .map(|(name, times)| {
            let times: Vec<String> = times.iter().map(f64::to_string).collect();
            format!("{{\"command\":\"{name}\",\"times\":[{}]}}", times.join(","))
        })
        .collect();
    format!("{{\"results\":[{}]}}\n", results.join(","))
}
