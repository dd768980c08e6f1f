//! scripts/demo.sh's cluster mode against a stand-in `oc` (or `kubectl`):
//! for OpenShift users without cluster-admin, which permission it checks in
//! which order, how it makes and deletes the project; fresh pods on a
//! re-run; the images it deploys on Kubernetes; and what it shows when the
//! pods do not come up (the stand-in's rollout never finishes, as with an
//! image that cannot be pulled).

use crate::support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;
use support::{output_within, TempDir};

const NS: &str = "dev-demo";

/// Answers like OpenShift (or, as `kubectl`, like Kubernetes) for a user
/// whose rights the environment sets; logs every call, keeps what is
/// applied, renders the kustomization with the real kubectl.
const STUB: &str = r#"#!/bin/sh
echo "$*" >>"$STUB_CALLS"
case "$*" in
whoami*) echo developer ;;
api-resources*) [ "${0##*/}" = kubectl ] || echo templates.template.openshift.io ;;
"get namespace"*) [ "$STUB_PROJECT" = yes ] || { echo 'Error from server (NotFound)' >&2; exit 1; } ;;
"create namespace"* | "delete namespace"* | "-n "*" scale "*) ;;
kustomize*) exec "$STUB_REAL_KUBECTL" "$@" ;;
"auth can-i create pods"*) echo "$STUB_PODS"; [ "$STUB_PODS" = yes ] ;;
"auth can-i create projectrequests"*) echo "$STUB_PROJECTREQUESTS"; [ "$STUB_PROJECTREQUESTS" = yes ] ;;
"get project"*) [ "$STUB_PROJECT" = yes ] || { echo 'Error from server (Forbidden)' >&2; exit 1; } ;;
new-project*) echo "Now using project" ;;
"-n "*" apply "*) cat >>"$STUB_CALLS.applied" ;;
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
    demo_with("oc", dir, rights, args)
}

fn demo_with(cli: &str, dir: &Path, rights: &[(&str, &str)], args: &[&str]) -> Run {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let stub = bin.join(cli);
    fs::write(&stub, STUB).unwrap();
    fs::set_permissions(&stub, fs::Permissions::from_mode(0o755)).unwrap();
    let calls = dir.join("calls");
    let _ = fs::remove_file(&calls);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo.sh");
    // The demo's own waits are 5 s (--timeout) against a stand-in that
    // answers at once; as long as tests/it/demo.rs gives a demo run.
    let out = output_within(
        Command::new("bash")
            .arg(script)
            .args(["--namespace", NS, "--timeout", "5"])
            .args(args)
            .env(
                "PATH",
                format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin.display()),
            )
            .env("STUB_CALLS", &calls)
            .env("STUB_REAL_KUBECTL", real_kubectl())
            .env("TMPDIR", dir)
            .envs(rights.iter().copied()),
        Duration::from_secs(60),
    );
    let calls = fs::read_to_string(&calls).unwrap_or_default();
    Run {
        out,
        calls: calls.lines().map(String::from).collect(),
    }
}

/// The kubectl on PATH (install-deps installs it), which renders the
/// kustomization for the stand-in.
fn real_kubectl() -> std::path::PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("kubectl"))
        .find(|file| file.is_file())
        .unwrap_or_else(|| "kubectl (not found: run scripts/install-deps.sh)".into())
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

#[test]
fn on_kubernetes_it_applies_the_kustomization_with_the_given_images() {
    let dir = TempDir::new("demo-kubectl");
    let rights = [("STUB_PODS", "yes"), ("STUB_PROJECT", "no")];
    let images = [
        "--receiver-image",
        "registry.example:5000/me/receiver:1.2",
        "--sender-image",
        "registry.example:5000/me/sender@sha256:0123",
    ];
    let run = demo_with(
        "kubectl",
        &dir,
        &rights,
        &[&images[..], &["--cleanup"]].concat(),
    );
    assert_eq!(run.out.status.code(), Some(1), "{}", run.text());
    run.in_order(&[
        "get namespace dev-demo",
        "create namespace dev-demo",
        "-n dev-demo apply -f -",
        "-n dev-demo rollout status",
        "delete namespace dev-demo",
    ]);
    let applied = fs::read_to_string(dir.join("calls.applied")).unwrap();
    let image_lines: Vec<&str> = applied
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("image:"))
        .collect();
    assert_eq!(
        image_lines,
        [
            "image: registry.example:5000/me/receiver:1.2",
            "image: registry.example:5000/me/sender@sha256:0123",
        ],
        "{applied}"
    );
    assert!(run.call("kustomize").is_some(), "{:#?}", run.calls);
    assert!(applied.contains("kind: NetworkPolicy"), "{applied}");
}
