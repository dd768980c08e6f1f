# shellcheck shell=bash
# What a pod runs, read from the rendered manifests: the one description of
# the pods. Local mode (cluster.sh) starts every process from it, so a
# change in deployments/ (an env var, an arg, the probe) changes what the
# local demo runs. `kubectl kustomize` renders (scripts/check-manifests.sh
# proves it equal to the OpenShift Template); `kubectl annotate --local`
# turns the YAML into JSON without a cluster; jq picks the fields.

# manifests_render DIR OUT: DIR's objects (and DIR/relay's, if there),
# one JSON object a line.
manifests_render() {
    if [ ! -e "$1/Kustomization" ]; then
        echo "demo: no Kustomization in $1 (the manifests' directory)" >&2
        return 1
    fi
    {
        kubectl kustomize "$1"
        [ ! -e "$1/relay/Kustomization" ] || { echo ---; kubectl kustomize "$1/relay"; }
    } | KUBECONFIG=/dev/null kubectl annotate --local -f - -o json udp-headless/rendered=true | jq -c . >"$2"
}

# manifests_container JSON KIND NAME CONTAINER OUT_PREFIX: writes the
# container's argv (OUT.cmd: command, else the image's ENTRYPOINT /NAME,
# then args), env (OUT.env: NAME=VALUE) NUL-separated, and its readiness
# probe (OUT.probe: "http PORT PATH", "exec" + OUT.probe-cmd, or empty).
manifests_container() {
    local spec
    # A Secret volume is the directory MANIFESTS_SECRETS/SECRET here (no
    # mount namespaces): env values under its mountPath are mapped there.
    spec=$(jq -c --arg k "$2" --arg n "$3" --arg c "$4" --arg s "${MANIFESTS_SECRETS:-}" '
        select(.kind == $k and .metadata.name == $n) | (.spec.template.spec // .spec) as $pod
        | $pod.containers[] | select(.name == $c) | .secrets = [.volumeMounts[]? as $m | $pod.volumes[]?
            | select(.name == $m.name and .secret) | {path: $m.mountPath, dir: "\($s)/\(.secret.secretName)"}]' "$1")
    if [ -z "$spec" ]; then
        echo "demo: the manifests have no container $4 in $2/$3" >&2
        return 1
    fi
    jq -j '(.command // ["/" + (.image | sub(".*/"; "") | sub("[:@].*"; ""))]) + (.args // []) | .[] + "\u0000"' \
        <<<"$spec" >"$5.cmd"
    jq -j '.secrets as $s | .env[]? | "\(.name)=\((.value // error("env \(.name): local mode takes plain values only"))
        | reduce $s[] as $m (.; if startswith($m.path + "/") then $m.dir + ltrimstr($m.path) else . end))\u0000"' \
        <<<"$spec" >"$5.env"
    jq -j '.readinessProbe.exec.command[]? + "\u0000"' <<<"$spec" >"$5.probe-cmd"
    jq -r '(.ports // []) as $ports | .readinessProbe // {} |
        if .httpGet then .httpGet.port as $p
            | "http \(if ($p | type) == "number" then $p else ($ports[] | select(.name == $p) | .containerPort) end) \(.httpGet.path // "/")"
        elif .exec then "exec" else "" end' <<<"$spec" >"$5.probe"
}
