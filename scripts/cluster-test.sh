#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Scale and end-to-end tests in the simulated cluster (scripts/lib/cluster.sh),
# with the checks the demo uses (scripts/lib/verify.sh):
#   - for the static musl sender and the glibc sender, one broadcast to all
#     N receivers for N = 2, 48, 49, 1000, 4000, every delivery checked;
#   - for each N, the cluster DNS's answer is complete (over TCP);
#   - the cluster DNS behaves as Kubernetes' (NXDOMAIN, NODATA, reloads);
#   - the harness itself catches a missed pod, a duplicate, a wrong source;
#   - scripts/demo.sh local passes, reports misses, and cleans up, also
#     after Ctrl-C;
#   - scripts/demo.sh (cluster mode) fails clearly without oc/kubectl, when
#     not logged in, and on bad arguments; its whole walkthrough passes
#     against a stand-in kubectl served by the simulated cluster.
# Prints "ok|FAIL <case> (<time>)" per case and finally exactly
#   cluster-test: N passed, N failed
# Exit 0 only if nothing failed. Needs root (network namespaces), ip and
# dnsmasq; builds the binaries with cargo unless --no-build.
#
# Usage: scripts/cluster-test.sh [--sizes "2 48 49 1000 4000"] [--senders "musl glibc"]
#                                [--only scale|harness|demo|cli] [--no-build]
set -euo pipefail

SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$SCRIPTS")
# The simulated cluster, with the DNS client and the log checks.
# shellcheck source=lib/cluster.sh
source "$SCRIPTS/lib/cluster.sh"

MUSL_DIR=${UDP_HEADLESS_MUSL_DIR:-$REPO/target/x86_64-unknown-linux-musl/release}
GLIBC_DIR=${UDP_HEADLESS_GLIBC_DIR:-$REPO/target/release}
# Up to this many receivers, each is a real pod (its own namespace and
# address); above, blocks of BLOCK_SIZE addresses share a namespace.
MAX_REAL_PODS=64
BLOCK_SIZE=100

PASSED=0
FAILED=0
FAILED_CASES=()

now_ms() {
    local t=${EPOCHREALTIME/./}
    echo $((t / 1000))
}

# Records a case's result: "ok NAME (DETAIL)" or "FAIL NAME (DETAIL)".
#   report ok|FAIL NAME DETAIL
report() {
    if [ "$1" = ok ]; then
        PASSED=$((PASSED + 1))
    else
        FAILED=$((FAILED + 1))
        FAILED_CASES+=("$2")
    fi
    echo "$1 $2 ($3)"
}

sender_dir() {
    case $1 in
    musl) echo "$MUSL_DIR" ;;
    glibc) echo "$GLIBC_DIR" ;;
    esac
}

build() {
    echo "cluster-test: building the musl and glibc binaries"
    (cd "$REPO" &&
        cargo build -q --release --target x86_64-unknown-linux-musl --bins &&
        cargo build -q --release --bins)
}

# ------------------------------------------------------------ scale tests

# Starts the receivers for N pods: N real pods, or N/BLOCK_SIZE blocks.
# Fills RECEIVER_PODS (pod namespaces with a receiver) and EXPECTED (file
# of all pod addresses). All receivers start first, then each is probed
# and published, like pods becoming ready in parallel.
start_receivers() {
    local n=$1 i block=0 first=0 count pod
    RECEIVER_PODS=()
    if ((n <= MAX_REAL_PODS)); then
        for ((i = 0; i < n; i++)); do
            pod=statefulset-udp-server-$i
            cluster_add_pod "$pod" "$(cluster_pod_ip "$i")" || return 1
            RECEIVER_PODS+=("$pod")
        done
    else
        while ((first < n)); do
            count=$((n - first < BLOCK_SIZE ? n - first : BLOCK_SIZE))
            cluster_add_block "$block" "$first" "$count" || return 1
            RECEIVER_PODS+=("$(cluster_block_name "$block")")
            first=$((first + count))
            block=$((block + 1))
        done
    fi
    for pod in "${RECEIVER_PODS[@]}"; do
        cluster_start_receiver "$pod" || return 1
    done
    EXPECTED=$CLUSTER_DIR/expected
    : >"$EXPECTED"
    for pod in "${RECEIVER_PODS[@]}"; do
        cluster_wait_ready "$pod" || return 1
        cluster_publish "$pod" || return 1
        cluster_pod_addresses "$pod" >>"$EXPECTED"
    done
    cluster_wait_dns "$n" 20
}

# The DNS answer for the service is complete: over TCP, exactly the N
# published addresses, TTL 5; over UDP (what the resolvers ask first) it is
# complete when it fits 512 bytes, else truncated (TC), which sends the
# resolver to TCP.
check_dns() {
    local n=$1 start tcp udp why=""
    start=$(now_ms)
    tcp=$(dns_query "$(cluster_netns sender-app)" "$CLUSTER_DNS_IP" "$(cluster_service_fqdn)" tcp) || why="no TCP answer"
    udp=$(dns_query "$(cluster_netns sender-app)" "$CLUSTER_DNS_IP" "$(cluster_service_fqdn)" udp) || why="no UDP answer"
    local records
    records=$(awk '$1 == "a" { print $2 }' <<<"$tcp" | sort)
    if [ -z "$why" ]; then
        if ! grep -qx 'rcode NOERROR' <<<"$tcp"; then
            why="TCP answer: $(head -1 <<<"$tcp")"
        elif [ "$records" != "$(sort "$EXPECTED")" ]; then
            why="TCP answer has $(grep -c . <<<"$records") records, not the $n published"
        elif ! grep -qx 'ttl 5' <<<"$tcp"; then
            why="TTL is not 5: $(grep '^ttl' <<<"$tcp")"
        elif ((n > 28)) && ! grep -qx 'tc 1' <<<"$udp"; then
            why="a UDP answer with $n records should be truncated"
        elif ((n <= 28)) && [ "$(awk '$1 == "a"' <<<"$udp" | wc -l)" != "$n" ]; then
            why="UDP answer incomplete"
        fi
    fi
    local how="complete over TCP"
    ((n > 28)) && how+=", UDP truncated"
    ((n <= 28)) && how+=" and UDP"
    if [ -z "$why" ]; then
        report ok "dns N=$n" "$n records $how, $(($(now_ms) - start)) ms"
    else
        report FAIL "dns N=$n" "$why"
    fi
}

# One broadcast by the SENDER (musl|glibc) binary to all N pods, checked:
#   - the sender exits 0 and its log names exactly the N addresses, once each;
#   - each receiver namespace logged the message from sender-app's address
#     exactly as many times as it holds addresses.
# Why the per-namespace count proves per-address delivery: each address is
# held by exactly one namespace, and a datagram can only enter a namespace
# through one of its own addresses (the sender routes or ARPs each address
# to the one namespace holding it; a namespace drops frames and packets for
# addresses it does not hold). The sender sent exactly one datagram per
# address (its log, checked first). So a namespace holding k addresses can
# get at most k of them, and getting exactly k means each of its addresses
# got its datagram once; a loss would show as fewer, and a duplicate (the
# network or the sender repeating a datagram) as more, unless both hit the
# same namespace at once, which an extra check could not tell either.
broadcast_case() {
    local sender=$1 n=$2 dir start sent status=0 why="" pod want message
    dir=$(sender_dir "$sender")
    message="$sender-$n"
    if [ ! -x "$dir/sender" ]; then
        report FAIL "$sender N=$n" "no sender binary in $dir (build it, or drop --no-build)"
        return 0
    fi
    local log=$CLUSTER_DIR/logs/sender-$sender.log
    start=$(now_ms)
    cluster_exec sender-app "$dir/sender" -s "$CLUSTER_SERVICE" -m "$message" \
        >"$log" 2>"$log.err" || status=$?
    sent=$(($(now_ms) - start))
    [ "$status" = 0 ] || why="sender exit $status: $(head -c 300 "$log.err")"
    local problems=$CLUSTER_DIR/problems
    verify_sender_log "$log" "$EXPECTED" 2>"$problems" || why+="${why:+; }$(tr '\n' ' ' <"$problems")"
    local -a waits=()
    for pod in "${RECEIVER_PODS[@]}"; do
        waits+=("$(cluster_log "$pod")" "$(cluster_pod_addresses "$pod" | wc -l)")
    done
    verify_wait_received "$message" "$CLUSTER_SENDER_IP" 10 "${waits[@]}"
    sleep 0.2 # a duplicate would come right behind
    local bad=0
    for pod in "${RECEIVER_PODS[@]}"; do
        want=$(cluster_pod_addresses "$pod" | wc -l)
        verify_received "$pod" "$(cluster_log "$pod")" "$message" "$CLUSTER_SENDER_IP" "$want" 2>>"$problems" &&
            verify_no_stray_lines "$pod" "$(cluster_log "$pod")" 2>>"$problems" ||
            bad=$((bad + 1))
    done
    if ((bad)); then
        why+="${why:+; }$bad of ${#RECEIVER_PODS[@]} receiver namespaces wrong: $(grep -m 3 '^verify:' "$problems" | tr '\n' ' ')"
    fi
    local detail="broadcast $sent ms, all checked $(($(now_ms) - start)) ms"
    if [ -z "$why" ]; then
        report ok "$sender N=$n" "$detail"
    else
        report FAIL "$sender N=$n" "$detail; $why"
    fi
}

scale_tests() {
    local n sender start
    for n in $SIZES; do
        start=$(now_ms)
        cluster_init "$MUSL_DIR"
        cluster_up
        cluster_add_pod sender-app "$CLUSTER_SENDER_IP"
        if ! start_receivers "$n"; then
            report FAIL "setup N=$n" "receivers or DNS not ready"
            cluster_down
            continue
        fi
        echo "   (N=$n: ${#RECEIVER_PODS[@]} receiver namespaces ready and published in $(($(now_ms) - start)) ms)"
        check_dns "$n"
        for sender in $SENDERS; do
            broadcast_case "$sender" "$n"
        done
        cluster_down
    done
}

# ---------------------------------------------------------- harness checks

# What the simulated cluster DNS answers, as Kubernetes' does:
#   - a Service without ready pods: NXDOMAIN (what CoreDNS and kube-dns
#     answer, and what the Kubernetes DNS spec settled on), so the sender
#     says it did not resolve (exit 3);
#   - AAAA for a Service with IPv4 pods: NODATA (NOERROR, no records), not
#     NXDOMAIN, which would make the resolver drop the A records too;
#   - unknown names in cluster.local: NXDOMAIN; other names: REFUSED, as
#     the server has no upstream to forward to;
#   - a published pod appears, and an unpublished one disappears, quickly.
dns_behaviour_test() {
    local start status=0 t svc pod=statefulset-udp-server-0
    start=$(now_ms)
    WHY=""
    cluster_init "$MUSL_DIR"
    cluster_up
    cluster_add_pod sender-app "$CLUSTER_SENDER_IP"
    svc=$(cluster_service_fqdn)
    cluster_add_pod "$pod" "$(cluster_pod_ip 0)"
    cluster_start_receiver "$pod"
    cluster_wait_ready "$pod"
    expect_dns "NXDOMAIN 0" "$svc" udp
    cluster_exec sender-app "$MUSL_DIR/sender" -s "$CLUSTER_SERVICE" -m x >/dev/null 2>&1 || status=$?
    [ "$status" = 3 ] || WHY+="sender exit $status for an empty Service, not 3; "
    t=$(now_ms)
    cluster_publish "$pod"
    cluster_wait_dns 1 || WHY+="publish not seen; "
    local added=$(($(now_ms) - t))
    expect_dns "NOERROR 1" "$svc" udp
    expect_dns "NOERROR 0" "$svc" udp AAAA
    expect_dns "NOERROR 1" "$pod.$svc" udp
    expect_dns "NXDOMAIN 0" "sender-app.$svc" udp
    expect_dns "NXDOMAIN 0" "nothere.default.svc.cluster.local" udp
    expect_dns "REFUSED 0" example.com udp
    t=$(now_ms)
    cluster_unpublish "$pod"
    cluster_wait_dns 0 || WHY+="unpublish not seen; "
    local removed=$(($(now_ms) - t))
    cluster_down
    if [ -z "$WHY" ]; then
        report ok "dns behaviour (NXDOMAIN when empty, AAAA NODATA, REFUSED outside)" "publish seen in $added ms, unpublish in $removed ms"
    else
        report FAIL "dns behaviour" "$WHY"
    fi
}

# Adds to WHY unless the DNS answer seen from sender-app is WANT.
#   expect_dns "RCODE COUNT" NAME [udp|tcp] [A|AAAA]
expect_dns() {
    local want=$1 got
    shift
    got=$(dns_summary "$(cluster_netns sender-app)" "$CLUSTER_DNS_IP" "$@")
    [ "$got" = "$want" ] || WHY+="$*: $got, not $want; "
}

# The checks must be able to fail: a pod that is in DNS but whose receiver
# is gone, a second broadcast (duplicates), a wrong source, a sender log
# missing a pod.
harness_tests() {
    local start problems why=""
    start=$(now_ms)
    cluster_init "$MUSL_DIR"
    cluster_up
    cluster_add_pod sender-app "$CLUSTER_SENDER_IP"
    start_receivers 3
    problems=$CLUSTER_DIR/problems
    # Stop pod 2's receiver, keep it in DNS: it must be reported as a miss.
    local victim=statefulset-udp-server-2
    local -a pids
    mapfile -t pids < <(ip netns pids "$(cluster_netns "$victim")")
    kill "${pids[@]}"
    sleep 0.2
    local log=$CLUSTER_DIR/logs/sender.log
    cluster_exec sender-app "$MUSL_DIR/sender" -s "$CLUSTER_SERVICE" -m once >"$log" 2>&1
    cluster_exec sender-app "$MUSL_DIR/sender" -s "$CLUSTER_SERVICE" -m twice >>"$log" 2>&1
    cluster_exec sender-app "$MUSL_DIR/sender" -s "$CLUSTER_SERVICE" -m twice >>"$log" 2>&1
    local pod0 pod2
    pod0=$(cluster_log statefulset-udp-server-0)
    pod2=$(cluster_log "$victim")
    verify_wait_received twice "$CLUSTER_SENDER_IP" 5 "$pod0" 2
    verify_received pod0 "$pod0" once "$CLUSTER_SENDER_IP" 1 2>"$problems" ||
        why+="a good delivery was rejected; "
    verify_received pod2 "$pod2" once "$CLUSTER_SENDER_IP" 1 2>"$problems" &&
        why+="a missed pod passed; "
    verify_received pod0 "$pod0" twice "$CLUSTER_SENDER_IP" 1 2>"$problems" &&
        why+="a duplicate passed; "
    verify_received pod0 "$pod0" once 10.244.0.99 1 2>"$problems" &&
        why+="a wrong source passed; "
    verify_received pod0 "$pod0" "once*" "$CLUSTER_SENDER_IP" 1 2>"$problems" &&
        why+="a regex character in the message was not escaped; "
    # The sender's log of the first broadcast, against a set with one more pod.
    head -3 "$log" >"$log.first"
    { cat "$EXPECTED"; echo 10.244.1.250; } >"$CLUSTER_DIR/expected+1"
    verify_sender_log "$log.first" "$EXPECTED" 2>"$problems" ||
        why+="a good sender log was rejected ($(cat "$problems")); "
    verify_sender_log "$log.first" "$CLUSTER_DIR/expected+1" 2>"$problems" &&
        why+="a sender log missing a pod passed; "
    verify_sender_log "$log" "$EXPECTED" 2>"$problems" &&
        why+="a sender log with each pod 3 times passed; "
    cluster_down
    if [ -z "$why" ]; then
        report ok "harness catches a missed pod, a duplicate, a wrong source" "$(($(now_ms) - start)) ms"
    else
        report FAIL "harness catches a missed pod, a duplicate, a wrong source" "$why"
    fi
}

# ------------------------------------------------------------- demo tests

# Runs `demo.sh local ARGS...` in the background, so its PID (which names
# its namespaces and temp dir) is known; waits for it. Sets DEMO_PID,
# DEMO_STATUS, DEMO_OUT (its output).
run_demo() {
    "$SCRIPTS/demo.sh" local "$@" >"$TEST_TMP/demo.out" 2>&1 &
    DEMO_PID=$!
    DEMO_STATUS=0
    wait "$DEMO_PID" || DEMO_STATUS=$?
    DEMO_OUT=$(cat "$TEST_TMP/demo.out")
}

# What the demo run with that PID left behind (namespaces, /etc/netns
# entries, its temp dir), as words; nothing if it cleaned up.
leftovers_of() {
    # A run's id is its PID and 4 hex digits: "????" cannot match another
    # PID's id, which would be longer or shorter.
    local id="$1????"
    ip netns list | grep -qE "^uh$1[0-9a-f]{4}-" && echo -n "namespaces "
    compgen -G "/etc/netns/uh$id-*" >/dev/null && echo -n "/etc/netns "
    compgen -G "${TMPDIR:-/tmp}/udp-headless-cluster.$id.*" >/dev/null && echo -n "temp-dir "
    return 0
}

# The README's first command must pass, print its verdict and clean up:
# with the shipped (musl) binaries by default, and others via --bin-dir.
demo_local_test() {
    local name=$1 start left
    shift
    start=$(now_ms)
    run_demo "$@"
    left=$(leftovers_of "$DEMO_PID")
    if [ "$DEMO_STATUS" = 0 ] && grep -q '^demo: PASS — 5/5 pods' <<<"$DEMO_OUT" && [ -z "$left" ]; then
        report ok "$name" "$(($(now_ms) - start)) ms"
    else
        report FAIL "$name" "exit $DEMO_STATUS, left: ${left:-nothing}: $(tail -3 <<<"$DEMO_OUT" | tr '\n' ' ')"
    fi
}

# The demo must say FAIL, name the pods, exit non-zero and still clean up
# when pods miss a message: here every receiver's log keeps only its first
# line, so the two first pods "miss" the second broadcast.
demo_miss_test() {
    local start left dir=$TEST_TMP/forgetful-bin
    start=$(now_ms)
    mkdir -p "$dir"
    ln -sf "$MUSL_DIR/sender" "$dir/sender"
    # shellcheck disable=SC2016 # $1 and $@ are for the wrapper script
    printf '#!/bin/sh\n[ "$1" = --check ] && exec %q --check\n%q "$@" | head -n 1\n' \
        "$MUSL_DIR/receiver" "$MUSL_DIR/receiver" >"$dir/receiver"
    chmod +x "$dir/receiver"
    run_demo --bin-dir "$dir"
    left=$(leftovers_of "$DEMO_PID")
    local want="demo: FAIL — missed or wrong: statefulset-udp-server-0 (test-after-scale), statefulset-udp-server-1 (test-after-scale)"
    if [ "$DEMO_STATUS" = 1 ] && grep -qxF "$want" <<<"$DEMO_OUT" && [ -z "$left" ]; then
        report ok "demo.sh local reports pods that missed a message" "$(($(now_ms) - start)) ms"
    else
        report FAIL "demo.sh local reports pods that missed a message" \
            "exit $DEMO_STATUS, left: ${left:-nothing}: $(tail -2 <<<"$DEMO_OUT" | tr '\n' ' ')"
    fi
}

# Ctrl-C (or SIGTERM) in the middle of the demo leaves nothing behind: no
# namespace of that run, no /etc/netns entry, no process, no temp dir.
demo_interrupt_test() {
    local signal=$1 start pid status=0 left=""
    start=$(now_ms)
    # Job control on: a background job then keeps SIGINT (a non-interactive
    # shell would start it with SIGINT ignored, as Ctrl-C never reaches it).
    set -m
    "$SCRIPTS/demo.sh" local --scale-to 30 >/dev/null 2>&1 &
    pid=$!
    set +m
    # Wait until it is mid-way: its namespaces exist.
    local deadline=$((SECONDS + 10))
    until ip netns list | grep -qE "^uh${pid}[0-9a-f]{4}-statefulset-udp-server-1( |$)" || ((SECONDS >= deadline)); do
        sleep 0.05
    done
    local -a pod_pids
    mapfile -t pod_pids < <(ip netns list | awk -v p="uh$pid" 'index($1, p) == 1 { print $1 }' |
        xargs -r -n 1 ip netns pids)
    kill "-$signal" "$pid" 2>/dev/null || left+="(the demo ended before the signal) "
    wait "$pid" || status=$?
    local p
    for p in "${pod_pids[@]}"; do
        kill -0 "$p" 2>/dev/null && left+="process-$p "
    done
    left+=$(leftovers_of "$pid")
    if [ -z "$left" ] && [ "$status" != 0 ] && [ "${#pod_pids[@]}" -gt 0 ]; then
        report ok "demo.sh local cleans up on SIG$signal" "exit $status, $(($(now_ms) - start)) ms"
    else
        report FAIL "demo.sh local cleans up on SIG$signal" "exit $status, left: ${left:-nothing}"
    fi
}

# ------------------------------------------------------- cluster-mode CLI

# Runs demo.sh (cluster mode) and checks its exit status and a message.
#   cli_case NAME WANT_STATUS WANT_TEXT ENV... -- ARGS...
cli_case() {
    local name=$1 want=$2 text=$3 out status=0
    shift 3
    local -a envs=()
    while [ "$1" != -- ]; do
        envs+=("$1")
        shift
    done
    shift
    out=$(env "${envs[@]}" bash "$SCRIPTS/demo.sh" "$@" 2>&1 </dev/null) || status=$?
    if [ "$status" = "$want" ] && grep -qF -- "$text" <<<"$out"; then
        report ok "$name" "exit $status"
    else
        report FAIL "$name" "exit $status, wanted $want and '$text'; got: $(head -c 300 <<<"$out")"
    fi
}

# A directory of links to every command on PATH but oc and kubectl.
path_without_oc() {
    local bin=$TEST_TMP/path-without-oc dir
    if [ ! -d "$bin" ]; then
        mkdir -p "$bin"
        for dir in ${PATH//:/ }; do
            [ -d "$dir" ] || continue
            find "$dir" -maxdepth 1 \( -type f -o -type l \) -print0 | xargs -0 -r ln -sf -t "$bin"
        done
        rm -f "$bin/oc" "$bin/kubectl"
    fi
    echo "$bin"
}

# The cluster mode's whole walkthrough, against a stand-in kubectl
# (scripts/lib/fake-kubectl.sh) that serves it from the simulated cluster:
# namespace, kustomize with custom images, rollout, exec, logs (with the
# receiver's startup line, as `kubectl logs` shows it), scale, --cleanup.
cluster_mode_test() {
    local start out status=0 why="" real
    start=$(now_ms)
    if ! real=$(command -v kubectl); then
        echo "skip demo.sh cluster mode with a stand-in kubectl (no kubectl for kustomize)"
        return 0
    fi
    cluster_init "$MUSL_DIR"
    cluster_up
    local fake=$TEST_TMP/fake-bin
    mkdir -p "$fake"
    printf '#!/bin/sh\nexec bash %q "$@"\n' "$SCRIPTS/lib/fake-kubectl.sh" >"$fake/kubectl"
    chmod +x "$fake/kubectl"
    out=$(env PATH="$fake:$(path_without_oc)" FAKE_KUBECTL_REAL="$real" \
        CLUSTER_DIR="$CLUSTER_DIR" CLUSTER_PREFIX="$CLUSTER_PREFIX" CLUSTER_NODE="$CLUSTER_NODE" \
        CLUSTER_BIN_DIR="$CLUSTER_BIN_DIR" \
        "$SCRIPTS/demo.sh" --namespace fake-ns --receiver-image registry.example:5000/me/receiver:1.2 \
        --sender-image registry.example:5000/me/sender@sha256:0123 --cleanup 2>&1) || status=$?
    [ "$status" = 0 ] || why+="exit $status; "
    grep -q '^demo: PASS — 5/5 pods' <<<"$out" || why+="no PASS verdict: $(tail -2 <<<"$out" | tr '\n' ' '); "
    local applied=$CLUSTER_DIR/applied.yaml
    grep -q 'image: registry.example:5000/me/receiver:1.2$' "$applied" || why+="receiver image not set; "
    grep -q 'image: registry.example:5000/me/sender@sha256:0123$' "$applied" || why+="sender image not set; "
    grep -q 'image: localhost/udp-headless/' "$applied" && why+="a default image was left; "
    grep -q 'create namespace fake-ns' "$CLUSTER_DIR/kubectl-calls" || why+="namespace not created; "
    grep -q 'delete namespace fake-ns' "$CLUSTER_DIR/kubectl-calls" || why+="--cleanup did not delete it; "
    cluster_down
    if [ -z "$why" ]; then
        report ok "demo.sh cluster mode (stand-in kubectl)" "$(($(now_ms) - start)) ms"
    else
        report FAIL "demo.sh cluster mode (stand-in kubectl)" "$why"
    fi
}

cli_tests() {
    cli_case "demo.sh --help" 0 "--receiver-image" -- --help
    cli_case "demo.sh rejects an unknown option" 2 "unknown option '--bogus'" -- --bogus
    cli_case "demo.sh rejects --replicas 0" 2 "--replicas needs a positive number" -- --replicas 0
    cli_case "demo.sh rejects --scale-to < --replicas" 2 "less than --replicas" -- --replicas 3 --scale-to 2
    cli_case "demo.sh rejects a bad namespace" 2 "not a valid namespace" -- --namespace Bad_NS
    cli_case "demo.sh local rejects a cluster option" 2 "unknown option for local mode" -- local --cleanup
    cli_case "demo.sh without oc/kubectl says so" 3 "neither oc nor kubectl is installed" \
        PATH="$(path_without_oc)" --
    if command -v kubectl >/dev/null || command -v oc >/dev/null; then
        # No cluster configured: kubectl falls back to localhost:8080, where
        # nothing listens (only loopback is ever tried).
        cli_case "demo.sh not logged in says so" 3 "not logged in" KUBECONFIG=/dev/null -- --namespace demo-test
    else
        echo "skip demo.sh not logged in (no oc/kubectl here)"
    fi
}

# -------------------------------------------------------------------- main

main() {
    SIZES="2 48 49 1000 4000"
    SENDERS="musl glibc"
    local only="" build=1
    while [ $# -gt 0 ]; do
        case $1 in
        --sizes) SIZES=$2; shift ;;
        --senders) SENDERS=$2; shift ;;
        --only) only=$2; shift ;;
        --no-build) build=0 ;;
        -h | --help) sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "cluster-test: unknown option '$1'" >&2; exit 2 ;;
        esac
        shift
    done
    if [ "$(id -u)" != 0 ]; then
        echo "cluster-test: needs root (network namespaces)" >&2
        exit 2
    fi
    ((build)) && build
    TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/udp-headless-cluster-test.XXXXXX")
    trap 'cluster_down; rm -rf "$TEST_TMP"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    local start
    start=$(now_ms)
    case $only in "" | scale) scale_tests ;; esac
    case $only in "" | harness) dns_behaviour_test; harness_tests ;; esac
    case $only in "" | demo)
        demo_local_test "demo.sh local" # the default: the shipped musl binaries
        demo_local_test "demo.sh local --bin-dir (glibc)" --bin-dir "$GLIBC_DIR"
        demo_miss_test
        demo_interrupt_test INT
        demo_interrupt_test TERM
        ;;
    esac
    case $only in "" | cli) cli_tests; cluster_mode_test ;; esac
    echo "cluster-test: total $(($(now_ms) - start)) ms${FAILED_CASES[*]:+; failed: ${FAILED_CASES[*]}}"
    echo "cluster-test: $PASSED passed, $FAILED failed"
    [ "$FAILED" = 0 ]
}

main "$@"
