#!/usr/bin/env bash
# Checks the manifests in deployments/ without a cluster:
#   1. layout: no kustomization.yaml that `kubectl apply -f deployments/`
#      would try to apply (the kustomization is deployments/Kustomization);
#   2. schema: kubernetes-validate --strict on every plain manifest, for
#      the newest and the oldest Kubernetes it knows;
#   3. Template: the OpenShift Template's objects, rendered with default
#      parameters, pass the same schema check and equal the plain manifests
#      (two copies of the same objects: this keeps them from drifting), but
#      for the Secret udp-headless-keys, the Template's alone;
#   4. kustomize: `kubectl kustomize deployments/` renders, passes the
#      schema check and equals the plain manifests (so a new manifest
#      cannot be forgotten in the Kustomization);
#   5. security: checkov on the plain manifests (subfolders included) and
#      on the rendered Template objects; skipped checks are justified by
#      checkov.io/skip annotations in the manifests;
#   6. openshift-build/: the BuildConfigs name Dockerfile stages and
#      ImageStreams that exist, and pass the Dockerfile's RUST_IMAGE;
#   7. deployments/relay/: schema, and its Kustomization renders the same.
# The linters come from the virtualenv made by scripts/install-deps.sh.
# Stops at the first failure, with a non-zero exit. Needs no network.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
deploy=$repo/deployments
template=$deploy/Deploy.yaml
tools=${UDP_HEADLESS_TOOLS:-$HOME/.cache/udp-headless/tools}
python=$tools/bin/python3
validate=$tools/bin/kubernetes-validate
checkov=$tools/bin/checkov

for tool in "$python" "$validate" "$checkov"; do
    if [ ! -x "$tool" ]; then
        echo "check-manifests: $tool is missing; run scripts/install-deps.sh first" >&2
        exit 1
    fi
done
if ! command -v kubectl >/dev/null; then
    echo "check-manifests: kubectl is missing (needed for kubectl kustomize)" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step() { printf '\n== %s\n' "$*"; }

# Plain manifests: what `kubectl apply -f deployments/` reads, minus the
# Template (kubernetes-validate has no schema for it; step 3 checks its
# objects).
shopt -s nullglob
manifests=()
for file in "$deploy"/*.yaml "$deploy"/*.yml "$deploy"/*.json; do
    [ "$file" = "$template" ] || manifests+=("$file")
done
shopt -u nullglob

# concat FILE...: the files as one multi-document YAML stream.
concat() {
    local file
    for file in "$@"; do
        cat "$file"
        echo "---"
    done
}

# same_objects EXPECTED FOUND: both YAML files must hold the same objects,
# matched by kind and name and compared as data (comments and key order do
# not matter); prints a diff of any mismatch.
same_objects() {
    "$python" - "$1" "$2" <<'PYTHON'
import difflib, sys, yaml

def objects(path):
    with open(path) as f:
        return {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(f) if o}

expected, found = objects(sys.argv[1]), objects(sys.argv[2])
ok = True
for kind, name in sorted(expected.keys() | found.keys()):
    a = yaml.safe_dump(expected.get((kind, name)), sort_keys=True).splitlines()
    b = yaml.safe_dump(found.get((kind, name)), sort_keys=True).splitlines()
    if a == b:
        print(f"  same: {kind}/{name}")
    else:
        ok = False
        print(f"  DIFFERENT: {kind}/{name}")
        for line in difflib.unified_diff(a, b, "plain manifests", "checked", lineterm=""):
            print("    " + line)
sys.exit(0 if ok else 1)
PYTHON
}

step "1. layout: no kustomization.y*ml in deployments/ (kubectl -f would read it)"
for name in kustomization.yaml kustomization.yml; do
    if [ -e "$deploy/$name" ]; then
        echo "  deployments/$name breaks 'kubectl apply -f deployments/'; name it deployments/Kustomization" >&2
        exit 1
    fi
done
echo "  ok: the kustomization is deployments/Kustomization"

step "2. kubernetes-validate --strict on the plain manifests (1.37, and 1.25: its oldest schemas)"
"$validate" --strict "${manifests[@]}"
"$validate" --strict -k 1.25.0 "${manifests[@]}"
concat "${manifests[@]}" >"$work/plain.yaml"

step "3. the Template's objects, rendered with default parameters"
# OpenShift's substitution: a value that is exactly ${{NAME}} becomes the
# parameter parsed as JSON (numbers such as replicas); ${NAME} inside any
# text becomes the parameter's text. Unknown names and leftovers fail.
# One file per object, as checkov reports by file.
mkdir "$work/template"
"$python" - "$template" "$work/template" <<'PYTHON'
import json, re, sys, yaml

template_path, out_dir = sys.argv[1:]
with open(template_path) as f:
    template = yaml.safe_load(f)
params = {p["name"]: p["value"] for p in template["parameters"] if "value" in p}
# A generated parameter (the signing key): a fixed stand-in of its form.
params.update({p["name"]: "A" * 43 + "=" for p in template["parameters"] if "generate" in p})

def param(name):
    if name not in params:
        sys.exit(f"check-manifests: ${{{name}}} is not a parameter with a default in {template_path}")
    return params[name]

def substitute(value):
    if isinstance(value, dict):
        return {k: substitute(v) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v) for v in value]
    if isinstance(value, str):
        whole = re.fullmatch(r"\$\{\{(\w+)\}\}", value)
        if whole:
            return json.loads(param(whole.group(1)))
        value = re.sub(r"\$\{(\w+)\}", lambda m: param(m.group(1)), value)
        if "${" in value:
            sys.exit(f"check-manifests: malformed parameter reference in {value!r}")
    return value

for obj in template["objects"]:
    obj = substitute(obj)
    kind, name = obj["kind"], obj["metadata"]["name"]
    with open(f"{out_dir}/{kind.lower()}-{name}.yaml", "w") as f:
        yaml.safe_dump(obj, f, sort_keys=False)
    print(f"  rendered {kind}/{name}")
PYTHON
"$validate" --strict "$work/template"/*.yaml
# The Secret is the Template's alone (the plain manifests leave the key to
# the user): it must hold the keyring the pods mount; set aside, not compared.
grep -q '^  keys: ' "$work/template/secret-udp-headless-keys.yaml"
mv "$work/template/secret-udp-headless-keys.yaml" "$work/"
concat "$work/template"/*.yaml >"$work/template.yaml"
echo "  compare with the plain manifests:"
same_objects "$work/plain.yaml" "$work/template.yaml"

step "4. kubectl kustomize deployments/ (for kubectl apply -k deployments/)"
kubectl kustomize "$deploy" >"$work/kustomize.yaml"
"$validate" --strict "$work/kustomize.yaml"
echo "  compare with the plain manifests:"
same_objects "$work/plain.yaml" "$work/kustomize.yaml"

step "5. checkov on the plain manifests, then on the Template's objects"
# --skip-download: no Bridgecrew/Prisma Cloud platform, no network.
# The kustomize output is not scanned again: step 4 showed it is the same.
for dir in "$deploy" "$work/template"; do
    echo "  checkov -d $dir"
    "$checkov" -d "$dir" --framework kubernetes --skip-download --quiet --compact
done
echo "  skipped checks, as justified in the manifests:"
grep -ho 'checkov.io/skip[0-9]*: .*' "${manifests[@]}" "$deploy"/relay/*.yaml | sed 's/^[^:]*: /    /' | sort -u

step "6. openshift-build/: each BuildConfig builds a Dockerfile stage into an ImageStream of its file"
"$python" - "$deploy/openshift-build/build.yaml" "$repo/Dockerfile" <<'PYTHON'
import re, sys, yaml
objects = [o for o in yaml.safe_load_all(open(sys.argv[1])) if o]
stages = set(re.findall(r"(?im)^FROM\s.*\sAS\s+(\S+)\s*$", open(sys.argv[2]).read()))
rust_image = re.search(r"(?m)^ARG RUST_IMAGE=(\S+)$", open(sys.argv[2]).read()).group(1)
streams = {o["metadata"]["name"] for o in objects if o["kind"] == "ImageStream"}
builds = [o for o in objects if o["kind"] == "BuildConfig"]
for b in builds:
    spec = b["spec"]
    args = {a["name"]: a["value"] for a in spec["strategy"]["dockerStrategy"]["buildArgs"]}
    stage, stream = args.get("IMAGE"), spec["output"]["to"]["name"].split(":")[0]
    ok = stage in stages and stream in streams and spec["source"]["type"] == "Binary" \
        and args.get("RUST_IMAGE") == rust_image
    print(f"  {'ok' if ok else 'WRONG'}: BuildConfig/{b['metadata']['name']}: stage {stage} -> ImageStream {stream}")
    if not ok:
        sys.exit(1)
sys.exit(0 if builds else "check-manifests: no BuildConfig in openshift-build/")
PYTHON

step "7. deployments/relay/ (added on its own): schema, and its Kustomization"
"$validate" --strict "$deploy"/relay/*.yaml
concat "$deploy"/relay/*.yaml >"$work/relay.yaml"
kubectl kustomize "$deploy/relay" >"$work/relay-kustomize.yaml"
same_objects "$work/relay.yaml" "$work/relay-kustomize.yaml"

printf '\ncheck-manifests: all checks passed\n'
