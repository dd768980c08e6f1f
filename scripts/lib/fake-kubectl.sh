#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# A stand-in `kubectl` for testing scripts/demo.sh's cluster mode without a
# cluster (scripts/cluster-test.sh): it answers the few commands the demo
# uses from the simulated cluster of scripts/lib/cluster.sh, so the demo's
# real steps and checks run against real receivers, a real sender and real
# DNS. Not a general kubectl: anything else fails loudly.
#
# Environment (set by the test): CLUSTER_DIR CLUSTER_PREFIX CLUSTER_NODE
# CLUSTER_BIN_DIR (the simulated cluster), FAKE_KUBECTL_REAL (a real kubectl,
# for `kustomize`). Every call is appended to $CLUSTER_DIR/kubectl-calls,
# every applied manifest to $CLUSTER_DIR/applied.yaml, for the test to check.
set -euo pipefail

LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=dns.sh
source "$LIB/dns.sh"
# shellcheck source=cluster.sh
source "$LIB/cluster.sh"
STS=statefulset-udp-server

echo "kubectl $*" >>"$CLUSTER_DIR/kubectl-calls"

# Drops the global flags the demo passes (-n NS, --request-timeout=...).
args=()
while [ $# -gt 0 ]; do
    case $1 in
    -n) shift ;;
    --request-timeout=*) ;;
    *) args+=("$1") ;;
    esac
    shift
done
set -- "${args[@]}"

# Receivers running now (the StatefulSet's pods), by index.
replicas() {
    find "$CLUSTER_DIR/pods" -name "$STS-*" | wc -l
}

# Scales the StatefulSet up: each new pod starts, passes its readiness
# probe and is published in DNS, as in the local demo.
scale_to() {
    local want=$1 i pod
    for ((i = $(replicas); i < want; i++)); do
        pod=$STS-$i
        cluster_add_pod "$pod" "$(cluster_pod_ip "$i")"
        cluster_start_receiver "$pod"
        cluster_wait_ready "$pod"
        cluster_publish "$pod"
    done
    cluster_wait_dns "$want"
}

case "$1 ${2:-}" in
"auth can-i") echo yes ;;
"api-resources "*) ;; # no template.openshift.io: plain Kubernetes
"get namespace")
    [ -e "$CLUSTER_DIR/namespace" ] || {
        echo "Error from server (NotFound): namespaces \"$3\" not found" >&2
        exit 1
    }
    ;;
"create namespace")
    touch "$CLUSTER_DIR/namespace"
    echo "namespace/$3 created"
    ;;
"kustomize "*) "$FAKE_KUBECTL_REAL" kustomize "$2" ;;
"apply -f")
    cat >>"$CLUSTER_DIR/applied.yaml"
    if [ ! -e "$CLUSTER_DIR/pods/sender-app" ]; then
        cluster_add_pod sender-app "$CLUSTER_SENDER_IP"
    fi
    scale_to "$(awk '$1 == "replicas:" { print $2; exit }' "$CLUSTER_DIR/applied.yaml")"
    echo "service/headless-udp configured"
    ;;
"scale statefulset/$STS") scale_to "${3#--replicas=}" ;;
"rollout status" | "wait --for=condition=Ready") echo "$* : ok" ;;
"get endpointslices")
    # Ready endpoints' pod names: the pods published in DNS.
    for pod in "$CLUSTER_DIR"/dns/hosts.d/*; do
        echo "${pod##*/}"
    done
    ;;
"get pods")
    printf '%-26s %-6s %-8s %s\n' NAME READY STATUS IP
    for pod in "$CLUSTER_DIR"/pods/sender-app "$CLUSTER_DIR"/pods/"$STS"-*; do
        read -r ip name <"$pod"
        printf '%-26s %-6s %-8s %s\n' "$name" 1/1 Running "$ip"
    done
    ;;
"get pod") cut -d' ' -f1 "$CLUSTER_DIR/pods/$3" ;;
"exec sender-app")
    # exec sender-app -c sender -- sender ARGS... (the image's PATH is /)
    shift 5
    [ "$1" = sender ] || { echo "fake-kubectl: exec of $1, not sender" >&2; exit 1; }
    shift
    cluster_exec sender-app "$CLUSTER_BIN_DIR/sender" "$@"
    ;;
"logs "*)
    # The container log: the receiver's stderr (startup line), then stdout.
    cat "$CLUSTER_DIR/logs/$2.err" "$(cluster_log "$2")"
    ;;
"delete namespace") rm -f "$CLUSTER_DIR/namespace" ;;
*)
    echo "fake-kubectl: not simulated: $*" >&2
    exit 1
    ;;
esac
