//! scripts/demo.sh against a stand-in `oc` for OpenShift users without
//! cluster-admin: which permission it checks in which order, how it makes
//! and deletes the project, fresh pods on a re-run, and what it shows when
//! the pods do not come up (the stand-in's rollout never finishes, as with
//! an image that cannot be pulled).

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use support::TempDir;

const NS: &str = "dev-demo";

/// Answers like OpenShift for a user whose rights the environment sets;
/// logs every call.
const STUB_OC: &str = r#"#!/bin/sh
echo "$*" >>"$STUB_CALLS"
case "$*" in
whoami*) echo developer ;;
api-resources*) echo templates.template.openshift.io ;;
"auth can-i create pods"*) echo "$STUB_PODS"; [ "$STUB_PODS" = yes ] ;;
"auth can-i create projectrequests"*) echo "$STUB_PROJECTREQUESTS"; [ "$STUB_PROJECTREQUESTS" = yes ] ;;
"get project"*) [ "$STUB_PROJECT" = yes ] || { echo 'Error from server (Forbidden)' >&2; exit 1; } ;;
new-project*) echo "Now using project" ;;
"-n "*" apply "*) cat >/dev/null ;;
"-n "*" process "*) echo '{"kind": "List", "items": []}' ;;
"-n "*" rollout status"*) echo "Waiting for 2 pods to be ready..."; exit 1 ;;
"-n "*" get pods"*) echo "statefulset-udp-server-0   0/1   ImagePullBackOff" ;;
"-n "*" get events"*) echo "Warning  Failed  pod/statefulset-udp-server-0  Failed to pull image" ;;
"-n "*" delete "* | "delete project "*) ;;
*) echo "stub oc: not expected: $*" >&2; exit 1 ;;
esac
"#;

struct Run {
    out: Output,
    calls: Vec<String>,
}

impl Run {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).to_string()
            + &String::from_utf8_lossy(&self.out.stderr)
    }

    /// Index of the first call starting with `prefix`.
    fn call(&self, prefix: &str) -> Option<usize> {
        self.calls.iter().position(|c| c.starts_with(prefix))
    }

    fn in_order(&self, prefixes: &[&str]) {
        let at: Vec<_> = prefixes.iter().map(|p| self.call(p)).collect();
        assert!(
            at.iter().all(Option::is_some) && at.windows(2).all(|w| w[0] < w[1]),
            "calls not in the order {prefixes:?}: {:#?}",
            self.calls
        );
    }
}

/// demo.sh with the stand-in `oc` first on PATH; `rights`: the stand-in's
/// STUB_* answers (yes or no).
fn demo(dir: &Path, rights: &[(&str, &str)], args: &[&str]) -> Run {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let oc = bin.join("oc");
    fs::write(&oc, STUB_OC).unwrap();
    fs::set_permissions(&oc, fs::Permissions::from_mode(0o755)).unwrap();
    let calls = dir.join("calls");
    let _ = fs::remove_file(&calls);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo.sh");
    let out = Command::new("bash")
        .arg(script)
        .args(["--namespace", NS, "--timeout", "5"])
        .args(args)
        .env(
            "PATH",
            format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin.display()),
        )
        .env("STUB_CALLS", &calls)
        .env("TMPDIR", dir)
        .envs(rights.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let calls = fs::read_to_string(&calls).unwrap_or_default();
    Run {
        out,
        calls: calls.lines().map(String::from).collect(),
    }
}

#[test]
fn a_self_provisioner_gets_a_new_project_which_cleanup_deletes_as_a_project() {
    let dir = TempDir::new("demo-self-provisioner");
    let rights = [
        ("STUB_PODS", "no"),
        ("STUB_PROJECT", "no"),
        ("STUB_PROJECTREQUESTS", "yes"),
    ];
    let run = demo(&dir, &rights, &["--cleanup"]);
    let text = run.text();
    assert_eq!(run.out.status.code(), Some(1), "{text}");
    run.in_order(&[
        "whoami",
        "auth can-i create pods -n dev-demo",
        "get project dev-demo",
        "auth can-i create projectrequests",
        "new-project dev-demo",
        "-n dev-demo apply",
        "-n dev-demo rollout status",
        "-n dev-demo get pods",
        "-n dev-demo get events --field-selector type=Warning",
        "delete project dev-demo",
    ]);
    // A project it made itself has nothing old in it to delete first.
    assert_eq!(run.call("-n dev-demo delete"), None, "{:#?}", run.calls);
    assert!(text.contains("ImagePullBackOff"), "{text}");
    assert!(text.contains("pods not ready after 5 s"), "{text}");
    let kept = text
        .lines()
        .find_map(|l| l.strip_prefix("demo: the logs of this run are kept in "))
        .unwrap_or_else(|| panic!("no kept logs: {text}"));
    assert!(Path::new(kept).starts_with(&*dir) && Path::new(kept).is_dir());
}

#[test]
fn a_user_who_may_not_create_projects_is_told_before_anything_is_made() {
    let dir = TempDir::new("demo-no-projects");
    let rights = [
        ("STUB_PODS", "no"),
        ("STUB_PROJECT", "no"),
        ("STUB_PROJECTREQUESTS", "no"),
    ];
    let run = demo(&dir, &rights, &[]);
    let text = run.text();
    assert_eq!(run.out.status.code(), Some(3), "{text}");
    assert!(
        text.contains("does not exist (or is not yours), and you may not create one")
            && text.contains("can-i create projectrequests.project.openshift.io: no"),
        "{text}"
    );
    assert_eq!(run.call("new-project"), None, "{:#?}", run.calls);
}

#[test]
fn a_project_member_without_pod_rights_is_told_so() {
    let dir = TempDir::new("demo-no-pods");
    let rights = [
        ("STUB_PODS", "no"),
        ("STUB_PROJECT", "yes"),
        ("STUB_PROJECTREQUESTS", "yes"),
    ];
    let run = demo(&dir, &rights, &[]);
    let text = run.text();
    assert_eq!(run.out.status.code(), Some(3), "{text}");
    assert!(
        text.contains("you may not create pods in namespace dev-demo"),
        "{text}"
    );
    assert_eq!(run.call("new-project"), None, "{:#?}", run.calls);
}

#[test]
fn a_rerun_in_an_existing_project_starts_from_fresh_pods_and_keeps_the_project() {
    let dir = TempDir::new("demo-rerun");
    let rights = [
        ("STUB_PODS", "yes"),
        ("STUB_PROJECT", "yes"),
        ("STUB_PROJECTREQUESTS", "no"),
    ];
    let run = demo(&dir, &rights, &["--cleanup"]);
    assert_eq!(run.out.status.code(), Some(1), "{}", run.text());
    run.in_order(&[
        "get project dev-demo",
        "-n dev-demo delete --ignore-not-found --cascade=foreground --timeout=5s statefulset,pod \
         -l app.kubernetes.io/part-of=udp-headless",
        "-n dev-demo apply",
        "-n dev-demo delete --ignore-not-found service,statefulset,pod,networkpolicy",
        "-n dev-demo delete --ignore-not-found template/udp-broadcasting",
    ]);
    assert_eq!(run.call("new-project"), None, "{:#?}", run.calls);
    assert_eq!(run.call("delete project"), None, "{:#?}", run.calls);
}
