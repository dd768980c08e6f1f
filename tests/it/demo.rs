//! scripts/demo.sh, the README's first command, as a user runs it.
//! Its options are checked here on any machine. `demo.sh local` itself
//! creates named network namespaces (`ip netns`), which needs real root:
//! those cases are `#[ignore]`d and scripts/test.sh (root) runs them.
//! Its log checks (scripts/lib/verify.sh) are run on real logs here too,
//! good and bad. (Its cluster mode: tests/it/demo_cluster.rs.)

use crate::support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use support::*;

fn demo() -> Command {
    let mut cmd = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo.sh"));
    cmd.stdin(Stdio::null());
    cmd
}

/// (args, exit code, text the output must contain)
const CLI_CASES: &[(&[&str], i32, &str)] = &[
    (&["--help"], 0, "--receiver-image"),
    (&["--bogus"], 2, "unknown option '--bogus'"),
    (
        &["--replicas", "0"],
        2,
        "--replicas needs a positive number",
    ),
    (
        &["--replicas", "3", "--scale-to", "2"],
        2,
        "less than --replicas",
    ),
    (&["--namespace", "Bad_NS"], 2, "not a valid namespace"),
    (&["local", "--cleanup"], 2, "unknown option for local mode"),
    (
        &["local", "--manifests"],
        2,
        "--manifests needs a directory",
    ),
];

#[test]
fn options_are_checked_before_anything_runs() {
    for (args, code, want) in CLI_CASES {
        let out = output_within(demo().args(*args), Duration::from_secs(60));
        assert_eq!(
            out.status.code(),
            Some(*code),
            "{args:?}: {}",
            output_text(&out)
        );
        assert!(
            output_text(&out).contains(want),
            "{args:?}: {}",
            output_text(&out)
        );
    }
}

/// A directory of links to every command on PATH but oc and kubectl.
fn path_without_oc(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    for path in std::env::split_paths(&std::env::var_os("PATH").unwrap()) {
        for entry in fs::read_dir(&path).into_iter().flatten().flatten() {
            let name = entry.file_name();
            if name != "oc" && name != "kubectl" && !bin.join(&name).exists() {
                let _ = std::os::unix::fs::symlink(entry.path(), bin.join(&name));
            }
        }
    }
    bin
}

#[test]
fn cluster_mode_says_what_is_missing() {
    let dir = TempDir::new("demo-no-oc");
    let out = output_within(
        demo().env("PATH", path_without_oc(&dir)),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(3), "{}", output_text(&out));
    assert!(output_text(&out).contains("neither oc nor kubectl is installed"));

    // With a CLI but no cluster configured, kubectl falls back to
    // localhost:8080, where nothing listens (only loopback is tried).
    let has_cli = ["oc", "kubectl"].iter().any(|cli| {
        Command::new("sh")
            .args(["-c", &format!("command -v {cli}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if has_cli {
        let out = output_within(
            demo()
                .env("KUBECONFIG", "/dev/null")
                .args(["--namespace", "demo-test"]),
            Duration::from_secs(120),
        );
        assert_eq!(out.status.code(), Some(3), "{}", output_text(&out));
        assert!(
            output_text(&out).contains("not logged in"),
            "{}",
            output_text(&out)
        );
    }
}

// ---- local mode (real root) ----

/// What a demo run (by its PID, which names its namespaces, /etc/netns
/// entries and temp dir) left behind; empty if it cleaned up.
fn leftovers_of(pid: u32) -> Vec<String> {
    // A run's id is its PID and 4 hex digits, then `sep`.
    let ours = |name: &str, prefix: &str, sep: u8| {
        name.strip_prefix(&format!("{prefix}{pid}"))
            .is_some_and(|rest| {
                rest.len() > 5
                    && rest.as_bytes()[..4].iter().all(u8::is_ascii_hexdigit)
                    && rest.as_bytes()[4] == sep
            })
    };
    let names = |dir: &Path| -> Vec<String> {
        fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    let mut left = Vec::new();
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    for line in String::from_utf8_lossy(&netns.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        if ours(name, "uh", b'-') {
            left.push(format!("netns {name}"));
        }
    }
    for name in names(Path::new("/etc/netns")) {
        if ours(&name, "uh", b'-') {
            left.push(format!("/etc/netns/{name}"));
        }
    }
    for name in names(&std::env::temp_dir()) {
        if ours(&name, "udp-headless-cluster.", b'.') {
            left.push(format!("temp dir {name}"));
        }
    }
    left
}

/// Runs `demo.sh` as `cmd` says, to its end (at most 300 s): its pid,
/// for `leftovers_of`, and its output.
fn run_demo(cmd: &mut Command) -> (u32, Output) {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    (
        pid,
        finish_within(child, "demo.sh local", Duration::from_secs(300)),
    )
}

/// The tests' binaries, in a directory for --bin-dir.
fn bin_dir() -> PathBuf {
    bin_path("sender").parent().unwrap().to_path_buf()
}

#[test]
#[ignore = "needs real root (ip netns): scripts/test.sh runs it"]
fn local_demo_passes_and_cleans_up() {
    let (pid, out) = run_demo(demo().args(["local", "--bin-dir"]).arg(bin_dir()));
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("\ndemo: PASS — 5/5 pods"),
        "{}",
        output_text(&out)
    );
    assert_eq!(leftovers_of(pid), Vec::<String>::new());
}

/// Local mode runs what the manifests say: a copy of deployments/ with
/// the receivers' UDP_HEADLESS_METRICS changed, and the receivers log the
/// new address (and the demo still passes, their startup lines accepted).
#[test]
#[ignore = "needs real root (ip netns): scripts/test.sh runs it"]
fn local_demo_runs_the_pods_the_manifests_describe() {
    let dir = TempDir::new("demo-manifests");
    let copy = dir.join("deployments");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("deployments");
    let cp = output_within(
        Command::new("cp").arg("-r").arg(&source).arg(&copy),
        Duration::from_secs(10),
    );
    assert!(cp.status.success(), "{}", output_text(&cp));
    let sts = copy.join("statefulset.yaml");
    let yaml = fs::read_to_string(&sts).unwrap();
    let from = "value: \"[::]:9102\"";
    assert_eq!(yaml.matches(from).count(), 1, "{yaml}");
    fs::write(&sts, yaml.replace(from, "value: \"0.0.0.0:9102\"")).unwrap();
    // (manifests, receivers' metrics address, times it is logged: 1 pod
    // shown once and 2 after scaling, plus the relay's (unchanged) line)
    for (manifests, want, times) in [(&source, "[::]:9102", 4), (&copy, "0.0.0.0:9102", 3)] {
        let (_, out) = run_demo(
            demo()
                .args(["local", "--replicas", "1", "--scale-to", "2", "--bin-dir"])
                .arg(bin_dir())
                .arg("--manifests")
                .arg(manifests),
        );
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(0), "{text}");
        assert!(
            text.contains(&format!(
                "each: UDP_HEADLESS_PORT=12000 UDP_HEADLESS_METRICS={want} \
                 UDP_HEADLESS_KEY_FILE=/"
            )) && text.contains("/secrets/udp-headless-keys/keys /receiver"),
            "{text}"
        );
        let logged = format!(" - root - INFO - metrics on http://{want}/metrics");
        assert_eq!(text.matches(&logged).count(), times, "{want}: {text}");
    }
}

/// The demo's checks must fail when pods miss a message: here every
/// receiver's log keeps only its first line, so the two first pods "miss"
/// the second broadcast; the demo names them, exits 1, and cleans up.
#[test]
#[ignore = "needs real root (ip netns): scripts/test.sh runs it"]
fn local_demo_reports_pods_that_missed_a_message() {
    let dir = TempDir::new("demo-forgetful");
    let receiver = bin_path("receiver");
    let wrapper = dir.join("receiver");
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n[ \"$1\" = --check ] && exec '{0}' \"$@\"\n'{0}' \"$@\" | head -n 1\n",
            receiver.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(bin_path("sender"), dir.join("sender")).unwrap();
    let (pid, out) = run_demo(demo().args(["local", "--bin-dir"]).arg(&*dir));
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    // The verdict names exactly the two first pods, for the second message
    // (and may add what else it found wrong about them).
    let verdict = output_text(&out)
        .lines()
        .find_map(|l| l.strip_prefix("demo: FAIL — missed or wrong: "))
        .unwrap_or_else(|| panic!("no FAIL verdict: {}", output_text(&out)))
        .to_string();
    for pod in 0..2 {
        let missed = format!("statefulset-udp-server-{pod} (test-after-scale)");
        assert!(verdict.contains(&missed), "{verdict}");
    }
    for pod in 2..5 {
        let named = format!("statefulset-udp-server-{pod} ");
        assert!(!verdict.contains(&named), "{verdict}");
    }
    assert_eq!(leftovers_of(pid), Vec::<String>::new());
}

/// Ctrl-C (or SIGTERM) mid-way leaves nothing behind: no namespace of the
/// run, no /etc/netns entry, no process, no temp dir.
fn interrupted(name: &str) {
    let dir = TempDir::new("demo-interrupted");
    let mut child = demo()
        .args(["local", "--scale-to", "30", "--bin-dir"])
        .arg(bin_dir())
        .stdout(Stdio::null())
        .stderr(fs::File::create(dir.join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id();
    let pod = |line: &str| {
        line.starts_with(&format!("uh{pid}"))
            && line
                .split_whitespace()
                .next()
                .is_some_and(|n| n.ends_with("-statefulset-udp-server-1"))
    };
    let list = || {
        let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    wait_until("the demo's second pod", Duration::from_secs(30), || {
        if let Some(status) = child.try_wait().unwrap() {
            let err = fs::read_to_string(dir.join("stderr")).unwrap_or_default();
            panic!("the demo ended ({status}) before its pods were up: {err}");
        }
        list().lines().any(pod)
    });
    let mut pod_pids = Vec::new();
    for line in list()
        .lines()
        .filter(|l| l.starts_with(&format!("uh{pid}")))
    {
        let ns = line.split_whitespace().next().unwrap();
        let out = Command::new("ip")
            .args(["netns", "pids", ns])
            .output()
            .unwrap();
        pod_pids.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(String::from),
        );
    }
    assert!(!pod_pids.is_empty(), "no pod processes to watch");
    signal(pid, name);
    wait_until("the demo to end", Duration::from_secs(30), || {
        child.try_wait().unwrap().is_some()
    });
    assert_ne!(child.wait().unwrap().code(), Some(0), "SIG{name}");
    let alive: Vec<&String> = pod_pids
        .iter()
        .filter(|p| Path::new(&format!("/proc/{p}")).exists())
        .collect();
    assert!(alive.is_empty(), "SIG{name}: still running: {alive:?}");
    assert_eq!(leftovers_of(pid), Vec::<String>::new(), "SIG{name}");
}

#[test]
#[ignore = "needs real root (ip netns): scripts/test.sh runs it"]
fn local_demo_cleans_up_on_sigint() {
    interrupted("INT");
}

#[test]
#[ignore = "needs real root (ip netns): scripts/test.sh runs it"]
fn local_demo_cleans_up_on_sigterm() {
    interrupted("TERM");
}

// ---- the demo's log checks (scripts/lib/verify.sh) on real logs ----

/// Runs `verify_FUNCTION ARGS...` from scripts/lib/verify.sh: whether it passed.
fn verify(function: &str, args: &[&str]) -> bool {
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lib/verify.sh");
    let out = output_within(
        Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source '{}' && verify_{function} \"$@\"",
                lib.display()
            ))
            .arg("verify")
            .args(args)
            .stdin(Stdio::null()),
        Duration::from_secs(10),
    );
    out.status.success()
}

#[test]
fn the_demos_log_checks_pass_good_logs_and_catch_bad_ones() {
    // As the manifests run it: with metrics, which it announces at start.
    let ours = Receiver::start("verify-sh", &["--metrics", "127.0.0.1:0"]);
    let port = ours.port.to_string();
    let sender = |message: &str| {
        output_within(
            bin("sender").args(["-s", "127.0.0.1", "-p", &port, "-m", message]),
            Duration::from_secs(10),
        )
    };
    let sent = sender("test");
    assert!(sent.status.success());
    sender("twice");
    sender("twice");
    ours.wait_lines(3);
    let dir = TempDir::new("verify-sh-files");
    let log = ours.log.to_str().unwrap();
    let ok = |args: &[&str]| verify("received", &[&["pod", log][..], args].concat());
    assert!(ok(&["test", "127.0.0.1", "1"]), "a good delivery");
    assert!(ok(&["twice", "127.0.0.1", "2"]));
    assert!(!ok(&["twice", "127.0.0.1", "1"]), "a duplicate passed");
    assert!(!ok(&["test", "127.0.0.2", "1"]), "a wrong source passed");
    assert!(
        !ok(&["tes", "127.0.0.1", "1"]),
        "a prefix of the message passed"
    );
    assert!(!ok(&["missed", "127.0.0.1", "1"]), "a miss passed");
    // `oc logs` shows stdout and stderr (the startup lines) together.
    let both = dir.join("both.log");
    let startup = fs::read_to_string(&ours.stderr).unwrap();
    assert!(
        startup.contains(" - root - INFO - metrics on http://127.0.0.1:")
            && startup.contains(" - root - INFO - listening on UDP "),
        "{startup}"
    );
    fs::write(&both, startup.clone() + &ours.log_text()).unwrap();
    assert!(verify("no_stray_lines", &["pod", both.to_str().unwrap()]));
    let stray = dir.join("stray.log");
    for bad in [
        "garbage\n",
        "metrics on http://[::]:9102/metrics\n",
        "2026-12-07 20:00:00,123 - root - WARNING - metrics on http://[::]:9102/metrics\n",
        "2026-12-07 20:00:00,123 - root - INFO - listening on UDP [::]:12000 twice\n",
        "2026-12-07 20:00:00,123 - root - INFO - something else\n",
    ] {
        fs::write(&stray, startup.clone() + &ours.log_text() + bad).unwrap();
        let passed = verify("no_stray_lines", &["pod", stray.to_str().unwrap()]);
        assert!(!passed, "a stray line passed: {bad}");
    }

    let sender_log = dir.join("sender.log");
    fs::write(&sender_log, &sent.stdout).unwrap();
    let expect = |ips: &str| {
        let file = dir.join("expected");
        fs::write(&file, ips).unwrap();
        verify(
            "sender_log",
            &[sender_log.to_str().unwrap(), file.to_str().unwrap()],
        )
    };
    assert!(expect("127.0.0.1\n"), "a good sender log");
    assert!(
        !expect("127.0.0.1\n127.0.0.2\n"),
        "a sender log missing a pod passed"
    );
    fs::write(&sender_log, [&sent.stdout[..], &sent.stdout[..]].concat()).unwrap();
    assert!(!expect("127.0.0.1\n"), "a doubled sender log passed");
}
