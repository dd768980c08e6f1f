#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The original demo's walkthrough, end to end, checked:
#   scripts/demo.sh local   on this Linux machine, no Kubernetes needed: pods
#                           are network namespaces, the cluster DNS is dnsmasq
#   scripts/demo.sh         on the OpenShift/Kubernetes cluster oc/kubectl
#                           is logged in to
# Both: 2 receivers + sender-app, one broadcast, every receiver's log checked;
# scale to 5, broadcast again with --confirm, all 5 checked and the sender's
# report compared with them; a one-line verdict; exit 0 only if every pod
# got every message meant for it exactly once and confirmed the second.
set -euo pipefail

SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$SCRIPTS")
# The simulated cluster, with the DNS client and the log checks.
# shellcheck source=lib/cluster.sh
source "$SCRIPTS/lib/cluster.sh"
# shellcheck source=lib/k8s.sh
source "$SCRIPTS/lib/k8s.sh"

STS=statefulset-udp-server
SERVICE=headless-udp
# The two broadcasts: different words, so a pod's log tells which it got.
MESSAGE_1='test'
MESSAGE_2=test-after-scale

usage() {
    cat <<EOF
Usage: scripts/demo.sh local [--bin-dir DIR] [--manifests DIR] [--keep-logs] [--replicas N] [--scale-to M]
       scripts/demo.sh [--namespace NS] [--receiver-image IMG] [--sender-image IMG]
                       [--replicas N] [--scale-to M] [--cleanup] [--timeout SECONDS]

Runs the original walkthrough and checks it: N receiver pods ($STS-0..)
and a sender-app pod; \`sender -s headless-udp -m $MESSAGE_1\` in sender-app; every
receiver must log the message exactly once, from sender-app's IP. Then the
StatefulSet is scaled to M pods and \`-m $MESSAGE_2 --confirm\` broadcast: all M
must log it once (and the first N still have their first message, once),
and the sender must report all M confirmed, agreeing with their logs. Before
each broadcast, \`sender --list\` in sender-app must list every ready receiver
(waited for, up to 90 s: a DNS cache may hold the old answer for its TTL).
Then sender-nokey (sender-app without the key) sends unsigned: each receiver
must refuse it, warn and count it. local mode then adds the relay: all M log its datagram once.
Prints the commands as their oc equivalents, the sender's and each
receiver's log, and a one-line verdict.

local: on this machine (root, Linux): each pod is a network namespace on a
  bridge in a "node" namespace, the cluster DNS is dnsmasq in its own pod
  namespace (installed if missing), nothing touches the host's network.
  Everything is removed at the end, also on failure or Ctrl-C.
  Each pod runs what the manifests say: the container's command, args, env
  and readiness probe, read from \`kubectl kustomize deployments/\` (and
  deployments/relay/); an image's /receiver is the bin dir's receiver.
  --bin-dir DIR    where sender, receiver and relay are [\$UDP_HEADLESS_BIN_DIR,
                   else target/<uname -m>-unknown-linux-musl/release, built
                   if missing; without a relay there, its step is skipped]
  --manifests DIR  the deployments/ directory to run the pods of [deployments/]
  --keep-logs      keep the pods' logs (the directory is printed)

cluster (default): on OpenShift (oc, the Template in deployments/Deploy.yaml)
  or Kubernetes (kubectl, kubectl apply -k deployments/), oc preferred.
  --namespace NS         project/namespace, created if missing [headless-demo]
  --receiver-image IMG   [localhost/udp-headless/receiver:0.1.0]
  --sender-image IMG     [localhost/udp-headless/sender:0.1.0]
  --cleanup              delete at the end what this run created (the
                         namespace if it made it, else the demo's objects)
  --timeout SECONDS      for each rollout/wait [300]

Both:
  --replicas N     receivers at first [2]
  --scale-to M     receivers after scaling [5]
  -h, --help       this help

Exit: 0 every pod got its messages; 1 a pod missed one (or got it twice), or
a step failed (cluster mode keeps the saved logs then); 2 usage error;
3 something needed is missing (root, tools, a cluster login).
EOF
}

die_usage() {
    echo "demo: $1 (see scripts/demo.sh --help)" >&2
    exit 2
}

# A positive integer option value, or a usage error.
count_arg() {
    [[ $2 =~ ^[1-9][0-9]*$ ]] || die_usage "$1 needs a positive number, not '$2'"
    echo "$2"
}

# Prints a walkthrough step header: the command a user would type.
step() {
    echo
    echo "== $*"
}

# ---------------------------------------------------------------- local mode

local_main() {
    local bin_dir=${UDP_HEADLESS_BIN_DIR:-} keep_logs=0 replicas=2 scale_to=5 manifests=$REPO/deployments
    while [ $# -gt 0 ]; do
        case $1 in
        --bin-dir) [ $# -ge 2 ] || die_usage "--bin-dir needs a directory"; bin_dir=$2; shift ;;
        --manifests) [ $# -ge 2 ] || die_usage "--manifests needs a directory"; manifests=$2; shift ;;
        --keep-logs) keep_logs=1 ;;
        --replicas) [ $# -ge 2 ] || die_usage "--replicas needs a number"; replicas=$(count_arg --replicas "$2"); shift ;;
        --scale-to) [ $# -ge 2 ] || die_usage "--scale-to needs a number"; scale_to=$(count_arg --scale-to "$2"); shift ;;
        -h | --help) usage; exit 0 ;;
        *) die_usage "unknown option for local mode: '$1'" ;;
        esac
        shift
    done
    ((scale_to >= replicas)) || die_usage "--scale-to ($scale_to) is less than --replicas ($replicas)"
    # Each pod here is a namespace, a bridge port and one neighbour (ARP)
    # entry in sender-app, and the kernel's neighbour table limit is shared
    # with the host (1024 by default): stay well below it. Thousands of pods
    # are what tests/it/cluster.rs simulates, differently.
    ((scale_to <= 250)) || die_usage "local mode runs at most 250 pods"
    local_preflight
    bin_dir=$(local_binaries "$bin_dir")

    CLUSTER_KEEP_DIR=$keep_logs
    trap local_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    cluster_init "$bin_dir" "$manifests"
    PLATFORM=local
    WORK_DIR=$CLUSTER_DIR/logs
    RECEIVE_WAIT=5
    LIST_WAIT=10
    local_walkthrough "$replicas" "$scale_to"
}

# Root, ip, dnsmasq, kubectl and jq (to read the manifests): what local
# mode cannot do without. Installs them with apt-get if missing
# (install-deps.sh would install far more).
local_preflight() {
    if [ "$(id -u)" != 0 ]; then
        echo "demo: local mode needs root (it creates network namespaces): sudo scripts/demo.sh local" >&2
        exit 3
    fi
    if ! local_have_tools && command -v apt-get >/dev/null; then
        local packages=(dnsmasq-base iproute2 jq)
        command -v kubectl >/dev/null || packages+=(kubernetes-client)
        echo "demo: installing what is missing (${packages[*]})"
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}"
    fi
    if ! local_have_tools; then
        echo "demo: local mode needs ip (iproute2), dnsmasq (dnsmasq-base), jq and kubectl; install them" >&2
        exit 3
    fi
}

local_have_tools() {
    command -v ip >/dev/null && [ -x "$(cluster_dnsmasq)" ] && command -v jq >/dev/null && command -v kubectl >/dev/null
}

# Prints the directory holding sender and receiver; builds the static musl
# binaries (the shipped ones) into the default directory when cargo is
# there (incremental: quick when they are up to date, never stale).
local_binaries() {
    local dir=$1 target
    target=$(uname -m)-unknown-linux-musl
    local default=$REPO/target/$target/release
    if [ -z "$dir" ]; then
        dir=$default
        if command -v cargo >/dev/null || [ ! -x "$dir/sender" ] || [ ! -x "$dir/receiver" ]; then
            if ! command -v cargo >/dev/null; then
                echo "demo: no binaries in $dir and no cargo on root's PATH to build them." >&2
                echo "      Build them first as yourself: rustup target add $target &&" >&2
                echo "      cargo build --release --target $target; then run this again." >&2
                exit 3
            fi
            echo "demo: cargo build --release --target $target --bins" >&2
            rustup target list --installed 2>/dev/null | grep -qx "$target" || rustup target add "$target" >&2
            (cd "$REPO" && cargo build --release --target "$target" --bins) >&2
        fi
    fi
    if [ ! -x "$dir/sender" ] || [ ! -x "$dir/receiver" ]; then
        echo "demo: no sender/receiver binaries in $dir" >&2
        exit 3
    fi
    (cd "$dir" && pwd)
}

# The EXIT trap: verdict if the walkthrough did not finish, then clean up.
# errexit is off here: nothing may stop the cleanup half-way.
local_exit() {
    local status=$?
    set +e
    unfinished "$status"
    if [ "$CLUSTER_KEEP_DIR" = 1 ] && [ -n "${CLUSTER_DIR:-}" ]; then
        echo "demo: logs kept in $CLUSTER_DIR/logs"
    fi
    cluster_down
    exit "$status"
}

# A StatefulSet pod comes up: its namespace, the receiver, the readiness
# probe, and only then its DNS records.
local_start_receiver_pod() {
    local pod="$STS-$1" ip
    ip=$(cluster_pod_ip "$1")
    cluster_add_pod "$pod" "$ip"
    cluster_start "$pod" StatefulSet "$STS" receiver
    cluster_wait_ready "$pod"
    cluster_publish "$pod" "$ip"
}

# What POD runs, from the manifests: its env and command line.
local_runs() {
    tr '\0' ' ' <"$CLUSTER_DIR/pods/$1.env"
    tr '\0' ' ' <"$CLUSTER_DIR/pods/$1.cmd"
}

# Like `oc get pods -o wide` (pods sorted by name).
local_get_pods() {
    local replicas=$1 i
    printf '%-26s %-6s %-8s %s\n' NAME READY STATUS IP
    printf '%-26s %-6s %-8s %s\n' sender-app 1/1 Running "$CLUSTER_SENDER_IP"
    for ((i = 0; i < replicas; i++)); do
        printf '%-26s %-6s %-8s %s\n' "$STS-$i" 1/1 Running "$(cluster_pod_ip "$i")"
    done
}

# ------------------------------------------- the walkthrough's two checks
# One flow for both modes. What differs is behind PLATFORM (local or k8s):
#   ${PLATFORM}_sender ARGS...          runs sender in sender-app
#   ${PLATFORM}_pod_ip POD              a pod's IP
#   ${PLATFORM}_receiver_log POD MESSAGE SOURCE_IP SECONDS
#                                       saves POD's log, waiting up to SECONDS
#                                       for MESSAGE in it; prints its path
# WORK_DIR holds the saved logs; RECEIVE_WAIT bounds the wait for messages.

# `oc exec sender-app -- sender --list` until it names exactly the ready
# receivers' IPs (saved as expected-ROUND): a DNS cache on the way (CoreDNS
# `cache 30` before Kubernetes 1.32, NodeLocal DNSCache) can serve the
# answer from before a scale-out for up to its TTL, and a broadcast then
# would miss the new pods.
wait_listed() {
    local replicas=$1 round=$2 i deadline=$((SECONDS + LIST_WAIT))
    local expected=$WORK_DIR/expected-$round listed=$WORK_DIR/listed-$round
    for ((i = 0; i < replicas; i++)); do
        "${PLATFORM}_pod_ip" "$STS-$i"
        echo
    done | grep . | sort >"$expected"
    step "oc exec sender-app -- sender --list   (until it lists all $replicas receivers)"
    until "${PLATFORM}_sender" -s "$SERVICE" --list 2>&1 | sort >"$listed" && cmp -s "$expected" "$listed"; do
        if ((SECONDS >= deadline)); then
            echo "demo: after ${LIST_WAIT} s, sender-app still resolves $SERVICE to '$(paste -sd' ' "$listed")'," >&2
            echo "      not the $replicas ready receivers; a DNS cache should have caught up by now" >&2
            return 1
        fi
        sleep 1
    done
    cat "$listed"
}

# `oc exec sender-app -- sender -s headless-udp -m MESSAGE`: shows its log
# and checks it named exactly the receivers' IPs (wait_listed's), each once.
# The broadcast after scaling asks every pod to confirm (--confirm).
broadcast() {
    local message=$1 round=$2 status=0 confirm=()
    local log=$WORK_DIR/sender-$round.log
    [ "$message" = "$MESSAGE_2" ] && confirm=(--confirm)
    step "oc exec sender-app -- sender -s $SERVICE -m $message${confirm[*]:+ --confirm}"
    "${PLATFORM}_sender" -s "$SERVICE" -m "$message" "${confirm[@]}" >"$log" 2>"$log.err" || status=$?
    cat "$log" "$log.err"
    if [ "$status" != 0 ]; then
        echo "demo: the sender exited with status $status" >&2
        FAILED+=("sender exit $status (round $round)")
    fi
    verify_sender_log "$log" "$WORK_DIR/expected-$round" ||
        FAILED+=("sender log (round $round)")
}

# `oc logs` of each receiver, then the check: pods below OLD must have
# MESSAGE_1 once and (if MESSAGE is MESSAGE_2) MESSAGE_2 once; newer pods
# MESSAGE once; and nothing else but the receiver's own startup line.
check_receivers() {
    local replicas=$1 message=$2 old=$3 sender_ip i pod log deadline=$((SECONDS + RECEIVE_WAIT))
    sender_ip=$("${PLATFORM}_pod_ip" sender-app)
    # Delivery and logging are asynchronous to the sender's exit: wait for
    # every pod (one deadline for all), then give a duplicate, which would
    # arrive right behind the original, a moment before looking again.
    for ((i = 0; i < replicas; i++)); do
        "${PLATFORM}_receiver_log" "$STS-$i" "$message" "$sender_ip" \
            $((deadline > SECONDS ? deadline - SECONDS : 0)) >/dev/null
    done
    sleep 0.3
    for ((i = 0; i < replicas; i++)); do
        pod=$STS-$i
        log=$("${PLATFORM}_receiver_log" "$pod" "$message" "$sender_ip" 0)
        step "oc logs $pod"
        cat "$log"
        local ok=1
        verify_received "$pod" "$log" "$message" "$sender_ip" 1 || ok=0
        if [ "$message" = "$MESSAGE_2" ]; then
            local want_first=0
            ((i < old)) && want_first=1
            verify_received "$pod" "$log" "$MESSAGE_1" "$sender_ip" "$want_first" || ok=0
        fi
        verify_no_stray_lines "$pod" "$log" || ok=0
        ((ok)) || FAILED+=("$pod ($message)")
        if [ "$message" = "$MESSAGE_2" ] && ! confirmed_agrees "$pod" "$log"; then
            FAILED+=("$pod (--confirm report)")
        fi
    done
    if [ "$message" = "$MESSAGE_2" ] && ! grep -q "confirmed by $replicas of $replicas pods" "$WORK_DIR/sender-2.log.err"; then
        FAILED+=("sender --confirm: not all $replicas pods confirmed")
    fi
}

# The sender's --confirm report agrees with POD's log (LOG): it named the
# pod unconfirmed exactly when the pod did not log MESSAGE_2 once.
confirmed_agrees() {
    local ip logged=0 unconfirmed=0
    ip=$("${PLATFORM}_pod_ip" "$1")
    [ "$(verify_count_received "$2" "$MESSAGE_2" "$("${PLATFORM}_pod_ip" sender-app)")" = 1 ] && logged=1
    grep -q -F "no confirmation from :$ip " "$WORK_DIR/sender-2.log.err" && unconfirmed=1
    ((logged != unconfirmed)) && return 0
    echo "demo: the sender's report on $1 ($ip) disagrees with its log" >&2
    return 1
}

# A pod without the key (sender-nokey: sender-app without the keyring)
# sends unsigned: each receiver must not log it, but warn and count it.
check_unsigned() {
    local replicas=$1 ip i pod log deadline=$((SECONDS + RECEIVE_WAIT)) warned="WARNING - ignored an unsigned datagram from"
    step "oc exec sender-nokey -- sender -s $SERVICE -m unsigned   (a pod without the key)"
    "${PLATFORM}_nokey" -s "$SERVICE" -m unsigned || FAILED+=("sender-nokey")
    ip=$("${PLATFORM}_pod_ip" sender-nokey)
    for ((i = 0; i < replicas; i++)); do
        pod=$STS-$i
        until log=$("${PLATFORM}_receiver_log" "$pod" unsigned "$ip" 0) && grep -q -F "$warned $ip:" "$log" ||
            ((SECONDS >= deadline)); do sleep 0.5; done
        grep -F "$warned $ip:" "$log" || FAILED+=("$pod (no warning for the unsigned datagram)")
        [ "$(verify_count_received "$log" unsigned "$ip")" = 0 ] || FAILED+=("$pod (logged the unsigned datagram)")
        log=$("${PLATFORM}_metrics" "$pod") || { echo "demo: $pod's /metrics is out of reach (NetworkPolicy?): not checked"; continue; }
        grep -x 'udp_headless_signed_rejected_total{reason="unsigned"} 1' <<<"$log" ||
            FAILED+=("$pod (unsigned not counted in /metrics)")
    done
}

# ---------------------------------------------- local mode: the platform

local_sender() {
    cluster_exec sender-app sender "$@"
}

local_pod_ip() {
    case $1 in
    sender-app) printf '%s' "$CLUSTER_SENDER_IP" ;;
    sender-nokey) cat "$CLUSTER_DIR/pods/$1.ip" ;;
    *) printf '%s' "$(cluster_pod_ip "${1##*-}")" ;;
    esac
}

# A pod with no process and no env: sender-app's network, not its key.
local_nokey() {
    [ -e "$CLUSTER_DIR/pods/sender-nokey.ip" ] || cluster_add_pod sender-nokey 10.244.0.31
    cluster_exec sender-nokey sender "$@"
}

# GET /metrics on the manifests' metrics port (as k8s_metrics).
local_metrics() {
    # shellcheck disable=SC2016 # expanded by the inner bash
    ip netns exec "$(cluster_netns "$1")" timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/9102" &&
        printf "GET /metrics HTTP/1.0\r\n\r\n" >&3 && cat <&3' "$(cat "$CLUSTER_DIR/pods/$1.ip")"
}

# The receiver writes its log file itself: wait for the message in it.
local_receiver_log() {
    local log
    log=$(cluster_log "$1")
    verify_wait_received "$2" "$3" "$4" "$log" 1
    echo "$log"
}

local_walkthrough() {
    local replicas=$1 scale_to=$2 i
    FAILED=()
    echo "demo: local simulation: pods are network namespaces ${CLUSTER_PREFIX}*, on a bridge"
    echo "      in ${CLUSTER_NODE}; cluster DNS: dnsmasq at $CLUSTER_DNS_IP; binaries: $CLUSTER_BIN_DIR"
    step "oc new-project headless-demo; oc create -f deployments/"
    cluster_up
    echo "service/$CLUSTER_SERVICE created (headless: DNS answers one A record per ready pod)"
    echo "secret/udp-headless-keys created (keys: one \`head -c 32 /dev/urandom | base64\`), mounted into each pod"
    cluster_add_pod sender-app "$CLUSTER_SENDER_IP"
    cluster_start sender-app Pod sender-app sender
    echo "pod/sender-app created: $(local_runs sender-app)"
    for ((i = 0; i < replicas; i++)); do
        local_start_receiver_pod "$i"
    done
    echo "statefulset.apps/$STS created ($replicas pods ready), each: $(local_runs "$STS-0")"
    step "oc get pods -o wide"
    local_get_pods "$replicas"
    wait_listed "$replicas" 1

    broadcast "$MESSAGE_1" 1
    check_receivers "$replicas" "$MESSAGE_1" "$replicas"

    step "oc scale statefulset/$STS --replicas=$scale_to"
    for ((i = replicas; i < scale_to; i++)); do
        local_start_receiver_pod "$i"
    done
    echo "statefulset.apps/$STS scaled ($scale_to pods ready)"
    step "oc get pods -o wide"
    local_get_pods "$scale_to"
    wait_listed "$scale_to" 2

    broadcast "$MESSAGE_2" 2
    check_receivers "$scale_to" "$MESSAGE_2" "$replicas"
    check_unsigned "$scale_to"
    local_relay "$scale_to"

    step "oc delete project headless-demo   (here: every namespace, process and file of the run)"
    echo
    verdict "$replicas" "$scale_to"
}

# The relay (deployments/relay/): one datagram to its address, and every
# receiver logs it once, from sender-app (the relay signs its address).
local_relay() {
    local replicas=$1 ip=10.244.0.30 i log
    [ -x "$CLUSTER_BIN_DIR/relay" ] || { echo "demo: no relay in $CLUSTER_BIN_DIR: relay step skipped"; return 0; }
    step "oc create -f deployments/relay/; oc exec sender-app -- sender -s udp-relay -p 12001 -m via-relay"
    cluster_add_pod relay "$ip"
    cluster_start relay Deployment udp-relay relay
    echo "deployment.apps/udp-relay: one pod, $(local_runs relay)"
    cluster_wait_ready relay
    cat "$(cluster_log relay)"
    local_sender -s "$ip" -p 12001 -m via-relay
    local missed=0
    for ((i = 0; i < replicas; i++)); do
        log=$(local_receiver_log "$STS-$i" via-relay "$CLUSTER_SENDER_IP" "$RECEIVE_WAIT")
        verify_received "$STS-$i" "$log" via-relay "$CLUSTER_SENDER_IP" 1 || { FAILED+=("$STS-$i (via-relay)") && missed=1; }
    done
    ((missed)) || echo "$replicas/$replicas receivers logged 'via-relay' once, from sender-app (signed by the relay $ip)"
}

# The verdict when the walkthrough stopped before its end.
unfinished() {
    local status=$1
    if [ "$status" = 0 ] || [ "${VERDICT_DONE:-0}" = 1 ]; then
        return 0
    fi
    case $status in
    130 | 143) echo "demo: FAIL — interrupted; cleaning up" ;;
    *) echo "demo: FAIL — a step failed (exit status $status, see above)" ;;
    esac
}

# The one-line verdict, from FAILED (what went wrong, filled by the checks).
verdict() {
    local replicas=$1 scale_to=$2
    VERDICT_DONE=1
    if [ "${#FAILED[@]}" -eq 0 ]; then
        echo "demo: PASS — $scale_to/$scale_to pods received '$MESSAGE_2' after scaling (and confirmed it to the sender), $replicas/$replicas received '$MESSAGE_1' before, each exactly once; each refused and counted an unsigned one"
        return 0
    fi
    local list
    list=$(printf '%s, ' "${FAILED[@]}")
    echo "demo: FAIL — missed or wrong: ${list%, }"
    return 1
}

# -------------------------------------------------------------------- main

main() {
    case ${1:-} in
    local) shift; local_main "$@" ;;
    -h | --help) usage ;;
    *) k8s_main "$@" ;;
    esac
}

main "$@"
