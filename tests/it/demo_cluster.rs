//! scripts/demo.sh's cluster mode against a stand-in `oc` (or `kubectl`):
//! for OpenShift users without cluster-admin, which permission it checks in
//! which order, how it makes and deletes the project; fresh pods on a
//! re-run; the images it deploys on Kubernetes; and what it shows when the
//! pods do not come up (the stand-in's rollout never finishes, as with an
//! image that cannot be pulled).
//!
//! And end to end (`#[ignore]`d: root, podman, builds images; scripts/test.sh
//! runs it): demo.sh's cluster mode, unmodified, against tests/standin/kubectl,
//! a cluster stand-in that runs the real images as podman containers from the
//! applied manifests (as `oc`: a project and the Template; as `kubectl`: the
//! kustomization); it must PASS there, and FAIL, saying why, when the
//! receivers crash-loop or never become ready.

use crate::support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;
use support::{build_host_images, output_within, TempDir, PODMAN_CONF};

const NS: &str = "dev-demo";

/// Answers like OpenShift (or, as `kubectl`, like Kubernetes) for a user
/// whose rights the environment sets; logs every call, keeps what is
/// applied, renders the kustomization with the real kubectl.
const STUB: &str = r#"#!/bin/sh
echo "$*" >>"$STUB_CALLS"
case "$*" in
whoami*) echo developer ;;
"api-resources --api-group=monitoring.coreos.com"*) [ "$STUB_PODMONITORS" != yes ] || echo podmonitors.monitoring.coreos.com ;;
api-resources*) [ "${0##*/}" = kubectl ] || [ "$STUB_TEMPLATES" = no ] || echo templates.template.openshift.io ;;
"auth can-i create podmonitors"*) echo "$STUB_PODMONITOR_RIGHTS"; [ "$STUB_PODMONITOR_RIGHTS" = yes ] ;;
"-n "*" get serviceaccount default") ;;
"get namespace"*) [ "$STUB_PROJECT" = yes ] || { echo 'Error from server (NotFound)' >&2; exit 1; } ;;
"create namespace"* | "delete namespace"* | "-n "*" scale "*) ;;
kustomize*) exec "$STUB_REAL_KUBECTL" "$@" ;;
"auth can-i create pods"*) echo "$STUB_PODS"; [ "$STUB_PODS" = yes ] ;;
"auth can-i create projectrequests"*) echo "$STUB_PROJECTREQUESTS"; [ "$STUB_PROJECTREQUESTS" = yes ] ;;
"get project"*) [ "$STUB_PROJECT" = yes ] || { echo 'Error from server (Forbidden)' >&2; exit 1; } ;;
new-project*) [ "$STUB_TAKEN" != yes ] || { echo "Error from server (AlreadyExists): project.project.openshift.io \"${2}\" already exists" >&2; exit 1; }
    echo "Now using project" ;;
"-n "*" get secret udp-headless-keys") exit 1 ;;
"-n "*" create secret generic udp-headless-keys --from-file=keys="*) cat "${7#--from-file=keys=}" >"$STUB_CALLS.key" ;;
"-n "*" apply "*) cat >>"$STUB_CALLS.applied" ;;
"-n "*" process "*) echo '{"kind": "List", "items": []}' ;;
"-n "*" rollout status"*) echo "Waiting for 2 pods to be ready..."; exit 1 ;;
"-n "*" get pods"*) echo "statefulset-udp-server-0   0/1   ${STUB_POD_STATE:-ImagePullBackOff}" ;;
"-n "*" logs statefulset-udp-server-0 --tail=5") echo "exec /receiver: exec format error" ;;
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

/// The demo's objects, by name, as re-runs and --cleanup delete them.
const OBJECTS: &str = "service/headless-udp statefulset/statefulset-udp-server \
    networkpolicy/udp-headless-receiver networkpolicy/udp-headless-sender pod/sender-app pod/sender-nokey";

#[test]
fn a_project_name_another_user_took_is_said_so() {
    let dir = TempDir::new("demo-taken");
    let rights = [
        ("STUB_PODS", "no"),
        ("STUB_PROJECT", "no"),
        ("STUB_PROJECTREQUESTS", "yes"),
        ("STUB_TAKEN", "yes"),
    ];
    let run = demo(&dir, &rights, &[]);
    let text = run.text();
    assert_eq!(run.out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("demo: cannot create project dev-demo: Error from server (AlreadyExists)"),
        "{text}"
    );
    assert!(
        text.contains("pick another with --namespace NAME"),
        "{text}"
    );
    assert_eq!(run.call("-n dev-demo apply"), None, "{:#?}", run.calls);
}

#[test]
fn the_podmonitor_is_applied_where_allowed_and_skipped_with_a_line_where_forbidden() {
    for (allowed, want) in [
        ("yes", "-n dev-demo apply -f "),
        ("no", "PodMonitor skipped: you may not create podmonitors in dev-demo (OpenShift: ask for the monitoring-edit role)"),
    ] {
        let dir = TempDir::new("demo-podmonitor");
        let rights = [
            ("STUB_PODS", "yes"),
            ("STUB_PROJECT", "yes"),
            ("STUB_PODMONITORS", "yes"),
            ("STUB_PODMONITOR_RIGHTS", allowed),
        ];
        let run = demo(&dir, &rights, &["--cleanup"]);
        assert_eq!(run.out.status.code(), Some(1), "{}", run.text());
        let applied = run.calls.iter().any(|c| c.starts_with(want) && c.ends_with("deployments/monitoring/podmonitor.yaml"));
        let deleted = run.calls.iter().any(|c| c.starts_with("-n dev-demo delete") && c.ends_with("podmonitor/udp-headless"));
        if allowed == "yes" {
            assert!(applied && deleted, "{:#?}", run.calls);
        } else {
            assert!(run.text().contains(want), "{}", run.text());
            assert!(!applied && !deleted, "{:#?}", run.calls);
        }
    }
}

/// A receiver image for another CPU architecture crash-loops with `exec
/// format error` in its log: the demo says what that means.
#[test]
fn a_crash_loop_from_the_wrong_architecture_is_diagnosed() {
    let dir = TempDir::new("demo-arch");
    let rights = [
        ("STUB_PODS", "yes"),
        ("STUB_PROJECT", "yes"),
        ("STUB_POD_STATE", "CrashLoopBackOff"),
    ];
    let run = demo(&dir, &rights, &[]);
    let text = run.text();
    assert_eq!(run.out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("statefulset-udp-server-0 keeps exiting (crash loop)"),
        "{text}"
    );
    assert!(
        text.contains("        exec /receiver: exec format error"),
        "{text}"
    );
    assert!(
        text.contains("exec format error: the image is for another CPU architecture than the node"),
        "{text}"
    );
    assert!(!text.contains("an image cannot be pulled"), "{text}");
}

/// oc on a cluster without OpenShift's APIs: namespaces, made with oc.
#[test]
fn oc_on_plain_kubernetes_creates_the_namespace_with_oc() {
    let dir = TempDir::new("demo-oc-k8s");
    let rights = [
        ("STUB_PODS", "yes"),
        ("STUB_PROJECT", "no"),
        ("STUB_TEMPLATES", "no"),
    ];
    let run = demo(&dir, &rights, &[]);
    assert_eq!(run.out.status.code(), Some(1), "{}", run.text());
    run.in_order(&[
        "get namespace dev-demo",
        "create namespace dev-demo",
        "-n dev-demo get serviceaccount default",
        "-n dev-demo apply -f -",
    ]);
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
        "-n dev-demo get serviceaccount default",
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
        &format!(
            "-n dev-demo delete --ignore-not-found --cascade=foreground --timeout=5s {OBJECTS}"
        ),
        "-n dev-demo apply",
        &format!("-n dev-demo delete --ignore-not-found {OBJECTS} template/udp-broadcasting"),
    ]);
    // By name only: the namespace's other objects (the relay's) stay.
    assert!(
        !run.calls
            .iter()
            .any(|c| c.contains(" delete") && c.contains(" -l ")),
        "{:#?}",
        run.calls
    );
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
        "-n dev-demo get secret udp-headless-keys",
        "-n dev-demo create secret generic udp-headless-keys",
        "-n dev-demo apply -f -",
        "-n dev-demo rollout status",
        "delete namespace dev-demo",
    ]);
    // The keyring made for the pods: one key, 32 random bytes in base64.
    let key = fs::read_to_string(dir.join("calls.key")).unwrap();
    assert_eq!(key.len(), 45, "{key:?}");
    assert!(key.ends_with("=\n"), "{key:?}");
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

// ---- end to end, on the podman stand-in (tests/standin/kubectl) ----

/// One run of the stand-in: its state, its `kubectl` first on PATH, and the
/// id naming its networks (`ID-NAMESPACE`) and containers
/// (`ID-NAMESPACE-POD`, label standin=ID). Removed when dropped.
struct Standin {
    id: String,
    dir: TempDir,
}

impl Standin {
    fn new() -> Standin {
        let dir = TempDir::new("demo-standin");
        fs::create_dir_all(dir.join("state")).unwrap();
        fs::write(dir.join("containers.conf"), PODMAN_CONF).unwrap();
        // One directory per CLI: named oc, the stand-in is OpenShift.
        let standin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standin/kubectl");
        for cli in ["kubectl", "oc"] {
            fs::create_dir_all(dir.join(format!("bin-{cli}"))).unwrap();
            std::os::unix::fs::symlink(&standin, dir.join(format!("bin-{cli}/{cli}"))).unwrap();
        }
        Standin {
            id: format!("uhsi{}", std::process::id()),
            dir,
        }
    }

    fn env(&self, cmd: &mut Command, cli: &str) {
        let bin = self.dir.join(format!("bin-{cli}"));
        cmd.env(
            "PATH",
            format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin.display()),
        )
        .env("STANDIN_DIR", self.dir.join("state"))
        .env("STANDIN_ID", &self.id)
        .env("STANDIN_OWNER_PID", std::process::id().to_string())
        .env("STANDIN_REAL_KUBECTL", real_kubectl())
        .env("CONTAINERS_CONF", self.dir.join("containers.conf"))
        .env("TMPDIR", &*self.dir);
    }

    fn image(&self, what: &str) -> String {
        format!("localhost/{}/{what}:0.1.0", self.id)
    }

    fn podman(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("podman");
        cmd.env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .args(args);
        let out = output_within(&mut cmd, Duration::from_secs(120));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// demo.sh in cluster mode, with the stand-in as `cli` (oc: OpenShift,
    /// projects and the Template; kubectl: Kubernetes and the kustomization).
    fn demo(&self, cli: &str, ns: &str, receiver: &str, args: &[&str]) -> (Option<i32>, String) {
        let mut cmd = Command::new("bash");
        cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo.sh"))
            .args(["--namespace", ns, "--receiver-image", receiver])
            .args(["--sender-image", &self.image("sender")])
            .args(args);
        self.env(&mut cmd, cli);
        let out = output_within(&mut cmd, Duration::from_secs(300));
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text)
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(self.dir.join("bin-kubectl/kubectl"));
        cmd.args(args);
        self.env(&mut cmd, "kubectl");
        output_within(&mut cmd, Duration::from_secs(120))
    }

    /// Controllers, containers, networks and images of run `id`.
    fn remove(&self, id: &str) {
        for pid in fs::read_dir(self.dir.join("state/namespaces"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|ns| fs::read_to_string(ns.path().join("controller.pid")).ok())
        {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        let ids = self.podman(&["ps", "-aq", "--filter", &format!("label=standin={id}")]);
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f", "-t", "0"];
            args.extend(ids.split_whitespace());
            self.podman(&args);
        }
        let networks = self.podman(&[
            "network",
            "ls",
            "-q",
            "--filter",
            &format!("label=standin={id}"),
        ]);
        for network in networks.lines() {
            self.podman(&["network", "rm", "-f", network]);
        }
        let images = self.podman(&[
            "images",
            "-q",
            "--filter",
            &format!("reference=localhost/{id}/*"),
        ]);
        if !images.is_empty() {
            let mut args = vec!["rmi", "-f"];
            args.extend(images.split_whitespace());
            self.podman(&args);
        }
    }

    /// What runs killed before their cleanup left behind (their PID is gone).
    fn remove_stale(&self) {
        let listed = self.podman(&["network", "ls", "--format", "{{.Labels.standin}}"]);
        let images = self.podman(&["images", "--format", "{{.Repository}}"]);
        let mut ids: Vec<String> =
            listed
                .lines()
                .map(str::to_string)
                .chain(images.lines().filter_map(|i| {
                    Some(i.strip_prefix("localhost/")?.split('/').next()?.to_string())
                }))
                .filter(|id| {
                    id.strip_prefix("uhsi")
                        .and_then(|p| p.parse::<u32>().ok())
                        .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
                })
                .collect();
        ids.sort();
        ids.dedup();
        for id in ids {
            self.remove(&id);
        }
    }

    /// A receiver image whose /receiver is `main` (Rust source), built
    /// static: a broken receiver the manifests start like the real one.
    fn broken_image(&self, what: &str, main: &str) -> String {
        let dir = self.dir.join(what);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("main.rs"), main).unwrap();
        let rustc = Path::new(env!("CARGO")).with_file_name("rustc");
        let built = output_within(
            Command::new(rustc)
                .args([
                    "--edition",
                    "2021",
                    "--target",
                    "x86_64-unknown-linux-musl",
                    "-O",
                    "-o",
                ])
                .arg(dir.join("receiver"))
                .arg(dir.join("main.rs")),
            Duration::from_secs(300),
        );
        assert!(built.status.success(), "rustc: {built:?}");
        fs::write(
            dir.join("Containerfile"),
            "FROM scratch\nCOPY receiver /receiver\nUSER 65532:65532\nENTRYPOINT [\"/receiver\"]\n",
        )
        .unwrap();
        let image = self.image(what);
        let dir_text = dir.to_str().unwrap().to_string();
        self.podman(&[
            "build",
            "--pull=never",
            "--layers=false",
            "-t",
            &image,
            &dir_text,
        ]);
        assert!(
            !self.podman(&["images", "-q", &image]).is_empty(),
            "podman build {image}"
        );
        image
    }
}

/// The namespace's containers and network are gone (its --cleanup or
/// delete, done by the stand-in's controller a moment later).
fn wait_gone(s: &Standin, ns: &str) {
    let name = format!("name={}-{ns}", s.id);
    let end = std::time::Instant::now() + Duration::from_secs(60);
    while !s.podman(&["ps", "-aq", "--filter", &name]).is_empty()
        || !s
            .podman(&["network", "ls", "-q", "--filter", &name])
            .is_empty()
    {
        assert!(
            std::time::Instant::now() < end,
            "{ns}: containers or network left"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        self.remove(&self.id.clone());
    }
}

#[test]
#[ignore = "needs root and podman, builds images: scripts/test.sh"]
fn cluster_mode_passes_on_real_containers_and_fails_on_broken_receivers() {
    let s = Standin::new();
    s.remove_stale();
    let conf = s.dir.join("containers.conf");
    let (receiver, sender) = (s.image("receiver"), s.image("sender"));
    build_host_images(&conf, &[("receiver", &receiver), ("sender", &sender)]).unwrap();
    let crashing = s.broken_image(
        "crashing",
        "fn main() { eprintln!(\"receiver: cannot listen: simulated\"); std::process::exit(1) }",
    );
    let hanging = s.broken_image(
        "hanging",
        "fn main() { loop { std::thread::sleep(std::time::Duration::from_secs(60)) } }",
    );
    let broken = ["--timeout", "40", "--cleanup"];
    let ok_pods = format!("name={}-demo-ok-", s.id);
    // The good run, what its pods run as, then (deleting its namespace
    // without waiting) the crash-looping run in the same, still
    // terminating, namespace; beside them the never-ready run.
    let ((code, text), pods, crash, hang) = std::thread::scope(|scope| {
        let hang = scope.spawn(|| s.demo("kubectl", "demo-hang", &hanging, &broken));
        let ok = s.demo("oc", "demo-ok", &receiver, &["--timeout", "120"]);
        let names = s.podman(&["ps", "--format", "{{.Names}}", "--filter", &ok_pods]);
        let pods: Vec<(String, String, String)> = names
            .lines()
            .map(|pod| {
                let pid = s.podman(&["inspect", "-f", "{{.State.Pid}}", pod]);
                let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                let format =
                    "{{.HostConfig.ReadonlyRootfs}}{{range .Mounts}} {{.Destination}}:{{.RW}}{{end}}";
                (
                    pod.to_string(),
                    status,
                    s.podman(&["inspect", "-f", format, pod]),
                )
            })
            .collect();
        let deleted = s.kubectl(&["delete", "namespace", "demo-ok", "--wait=false"]);
        assert!(deleted.status.success(), "{deleted:?}");
        let crash = s.demo("kubectl", "demo-ok", &crashing, &broken);
        (ok, pods, crash, hang.join().unwrap())
    });

    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("\ndemo: PASS — 5/5 pods received 'test-after-scale'"),
        "{text}"
    );
    // On "OpenShift": a new project, the Template processed with the images.
    assert!(text.contains("project demo-ok created"), "{text}");
    assert!(
        text.contains("template.template.openshift.io/udp-broadcasting created"),
        "{text}"
    );
    // Each receiver logged the manifests' metrics line, and it passed.
    let metrics_line = " - root - INFO - metrics on http://[::]:9102/metrics";
    assert_eq!(text.matches(metrics_line).count(), 2 + 5, "{text}");
    assert!(
        text.contains("PodMonitor skipped: this cluster has no PodMonitor kind"),
        "{text}"
    );
    // Signed: each receiver refused sender-nokey's unsigned datagram, and
    // counted it (the demo checks each pod's warning and /metrics).
    let refused = " - root - WARNING - ignored an unsigned datagram from ";
    assert_eq!(text.matches(refused).count(), 5, "{text}");
    // 5 receivers and the sender, as restricted-v2 runs them, and the
    // sender without the key.
    assert_eq!(pods.len(), 7, "{pods:?}");
    for (pod, status, fs_and_mounts) in &pods {
        let field = |name: &str| {
            let line = status.lines().find_map(|l| l.strip_prefix(name));
            line.unwrap_or_default()
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string()
        };
        let uid: u64 = field("Uid:").parse().unwrap_or(0);
        assert!(
            uid >= 1_000_000_000 && field("Gid:") == "0",
            "{pod}: {status}"
        );
        assert!(
            field("CapEff:").bytes().all(|b| b == b'0'),
            "{pod}: {status}"
        );
        assert_eq!(field("NoNewPrivs:"), "1", "{pod}: {status}");
        // Only the keyring, read-only, as a directory (no service-account
        // token); none in sender-nokey.
        let keys = if pod.ends_with("-sender-nokey") {
            ""
        } else {
            " /etc/udp-headless:false"
        };
        assert_eq!(
            fs_and_mounts,
            &format!("true{keys}"),
            "{pod}: read-only root, the keyring only"
        );
    }

    let (code, text) = crash;
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("demo: pods not ready after 40 s"), "{text}");
    assert!(
        text.contains("CrashLoopBackOff") || text.contains("Error"),
        "{text}"
    );
    assert!(text.contains("demo: FAIL"), "{text}");

    let (code, text) = hang;
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("demo: pods not ready after 40 s"), "{text}");
    assert!(text.contains("Readiness probe failed"), "{text}");
    assert!(
        text.contains("a running pod is not ready: its readiness probe"),
        "{text}"
    );
    assert!(text.contains("demo: FAIL"), "{text}");
    for ns in ["demo-ok", "demo-hang"] {
        wait_gone(&s, ns);
    }
}
