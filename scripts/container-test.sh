#!/usr/bin/env bash
# Container smoke test: builds the two images and runs them with podman the
# way a cluster would, then does the same through compose.yaml with
# podman-compose.
#
#   scripts/container-test.sh
#
# What it does, in order:
#   1. cargo builds the static musl binaries on the host;
#   2. podman builds the receiver and sender images from them
#      (--build-arg BINARIES=host: nothing is pulled, see the Dockerfile),
#      and checks each is under 600 KB, non-root, and labelled; and an
#      arm64 receiver image from aarch64 binaries;
#   3. podman: a network of its own, 3 receivers sharing the network alias
#      headless-udp (one as a random OpenShift-style UID), the sender sends
#      one message to `headless-udp`, every receiver must log it in the
#      original demo's exact format, and `podman stop` must take < 2 s;
#   4. compose.yaml with podman-compose: up, exec into the idle sender and
#      send, every replica must log it, then down.
# Every container runs --read-only --cap-drop ALL
# --security-opt no-new-privileges, as the Kubernetes manifests ask.
#
# Needs root (CI and the demo run as root), podman with runc, netavark and
# aardvark-dns, podman-compose and the musl Rust target: see
# scripts/install-deps.sh. Touches nothing outside what it creates: podman
# objects carry this run's name (udp-headless-test-<pid>) and are all
# removed on exit, also on failure or Ctrl-C, so parallel runs don't collide.
#
# Prints PASS/FAIL per check and ends with
#   container-test: N passed, N failed
# Exit status 0 only if nothing failed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# ---------------------------------------------------------------------------
# Names and settings of this run.

run=udp-headless-test-$$
network=$run
compose_project=${run//-/_}_compose
receiver_image=localhost/$run/receiver:0.1.0
sender_image=localhost/$run/sender:0.1.0
source_image=localhost/$run/receiver-from-source:0.1.0
arm64_image=localhost/$run/receiver-arm64:0.1.0
picked_image=localhost/$run/picked-sender:0.1.0
# Unique per run, so an old log line can never pass for a new one.
message=ct-$$-$(date +%s)-$RANDOM
replicas=3
max_image_bytes=600000  # 600 KB
max_stop_ms=2000
# An OpenShift restricted-v2 style user: random high UID, group 0.
openshift_user=1000770000:0
# How every container runs: like the Kubernetes pods' securityContext.
hardening=(--read-only --cap-drop ALL --security-opt no-new-privileges)

musl_target=x86_64-unknown-linux-musl
tmp=$(mktemp -d "${TMPDIR:-/tmp}/$run.XXXXXX")

# Full-line formats of the original demo (Python logging's default format).
timestamp_re='[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2},[0-9]{3}'
ipv4_re='[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}'
sent_re="^$timestamp_re - root - INFO - sent message to :($ipv4_re)\$"
# received_re MESSAGE: the receiver's line for MESSAGE (letters, digits and
# dashes only, so it needs no regex escaping).
received_re() {
    echo "^$timestamp_re - root - INFO - Message from Client:b'$1' Client IP Address:\\('($ipv4_re)', ([0-9]+)\\)\$"
}

# ---------------------------------------------------------------------------
# podman configuration for this run, without touching /etc.
#
# On these machines (root, cgroup v1, no systemd) podman 4.3 needs:
#   - runtime "runc": Debian's podman prefers crun, which is not installed;
#   - default_ulimits within the hard limits here (nofile 20000): podman's
#     default asks for nofile=1048576 and the container fails to start;
#   - network_backend "netavark": with aardvark-dns, each user-created
#     network gets a DNS server (on its gateway address) that answers a
#     container name or --network-alias with the addresses of *all*
#     containers on that network carrying it, which is what a Kubernetes
#     headless Service does. netavark 1.4 + aardvark-dns 1.4 (Debian 12)
#     do (netavark sets up NAT with iptables, so that is needed too). The
#     other backend, CNI, would need the dnsname plugin and dnsmasq for
#     the same. Podman picks netavark by itself when it is installed and
#     no CNI network exists yet; saying it makes the choice explicit.
# Storage, the network configs and aardvark-dns stay podman's defaults
# (/var/lib/containers, /etc/containers/networks, /run/containers): the
# run's own names keep it apart from everything else.
cat >"$tmp/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]

[engine]
runtime = "runc"

[network]
network_backend = "netavark"
EOF
export CONTAINERS_CONF=$tmp/containers.conf

# ---------------------------------------------------------------------------
# Results.

passed=0
failed=0
finished=

pass() {
    passed=$((passed + 1))
    echo "PASS: $*"
}

fail() {
    failed=$((failed + 1))
    echo "FAIL: $*"
}

# check DESCRIPTION COMMAND...: PASS if COMMAND succeeds.
check() {
    local what=$1
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}

# show FILE: the output of a step that failed, indented.
show() {
    sed 's/^/    | /' "$1" >&2
}

summary() {
    finished=yes
    echo "container-test: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}

# abort WHY: a failure the rest of the test cannot go on from.
abort() {
    fail "$*"
    cleanup
    summary || true
    exit 1
}

# ---------------------------------------------------------------------------
# Cleanup: everything this run created, whatever state it is in.

cleaned=
cleanup() {
    [ -z "$cleaned" ] || return 0
    cleaned=yes
    local ids label net image
    # Containers of the podman part (labelled) and of the compose part
    # (podman-compose labels them with the project).
    for label in "udp-headless-test=$run" "io.podman.compose.project=$compose_project"; do
        ids=$(podman ps -aq --filter "label=$label" 2>/dev/null) || ids=
        if [ -n "$ids" ]; then
            # shellcheck disable=SC2086 # one id per word
            podman rm -f -t 0 $ids >/dev/null 2>&1 || true
        fi
    done
    # podman-compose 1.0.3's `down` leaves its network behind.
    for net in "$network" "${compose_project}_default"; do
        if podman network exists "$net" 2>/dev/null; then
            podman network rm -f "$net" >/dev/null 2>&1 || true
        fi
    done
    for image in "$receiver_image" "$sender_image" "$source_image" "$arm64_image" "$picked_image"; do
        if podman image exists "$image" 2>/dev/null; then
            podman rmi -f "$image" >/dev/null 2>&1 || true
        fi
    done
    rm -rf "$tmp"
}

on_exit() {
    local status=$?
    cleanup
    if [ -z "$finished" ]; then
        # Ended by an unexpected error (set -e) or a signal.
        fail "aborted (exit status $status) before the end of the test"
        summary || true
        exit 1
    fi
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------
# Helpers.

now_ms() {
    echo $(($(date +%s%N) / 1000000))
}

# container_ip NAME: its address on its (only) network.
container_ip() {
    podman inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$1"
}

# ip_to_int A.B.C.D
ip_to_int() {
    local a b c d
    IFS=. read -r a b c d <<<"$1"
    echo $(((a << 24) | (b << 16) | (c << 8) | d))
}

# in_subnet IP CIDR
in_subnet() {
    local net=${2%/*} bits=${2#*/}
    local mask=$(((0xffffffff << (32 - bits)) & 0xffffffff))
    [ $(($(ip_to_int "$1") & mask)) -eq $(($(ip_to_int "$net") & mask)) ]
}

# wait_ready CONTAINER: until `/receiver --check` inside it says the UDP
# port is bound (the Kubernetes readinessProbe), at most 10 s.
wait_ready() {
    local deadline=$(($(now_ms) + 10000))
    until podman exec "$1" /receiver --check >/dev/null 2>&1; do
        [ "$(now_ms)" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

# runs_as CONTAINER UID GID: its main process really has that (non-root)
# UID and GID, no capabilities, and no_new_privs set.
runs_as() {
    local pid status
    pid=$(podman inspect -f '{{.State.Pid}}' "$1") || return 1
    status=$(cat "/proc/$pid/status") || return 1
    grep -Eq "^Uid:[[:space:]]+$2[[:space:]]" <<<"$status" &&
        grep -Eq "^Gid:[[:space:]]+$3[[:space:]]" <<<"$status" &&
        grep -Eq '^CapEff:[[:space:]]+0+$' <<<"$status" &&
        grep -Eq '^NoNewPrivs:[[:space:]]+1$' <<<"$status" &&
        [ "$(podman inspect -f '{{.HostConfig.ReadonlyRootfs}}' "$1")" = true ]
}

# check_sender_output FILE IP...: FILE (the sender's output) has exactly one
# `sent message to :IP` line per given IP, every line in the exact format.
check_sender_output() {
    local file=$1
    shift
    local want got line
    want=$(printf '%s\n' "$@" | sort)
    got=$(
        while IFS= read -r line; do
            if [[ $line =~ $sent_re ]]; then
                echo "${BASH_REMATCH[1]}"
            else
                echo "unexpected line: $line"
            fi
        done <"$file" | sort
    )
    if [ "$got" != "$want" ]; then
        echo "    expected one line per receiver ($*), got:" >&2
        show "$file"
        return 1
    fi
}

# check_received CONTAINER MESSAGE SUBNET NOT_FROM...: the container's log
# has exactly one line with MESSAGE, in the exact format, from an address
# in SUBNET (the sender's container, on the same network: not NAT'ed
# through the gateway) that is none of NOT_FROM (the receivers).
# Waits up to 5 s for the line to appear.
check_received() {
    local container=$1 msg=$2 subnet=$3
    shift 3
    local re lines line deadline ip not
    re=$(received_re "$msg")
    deadline=$(($(now_ms) + 5000))
    while :; do
        lines=$(podman logs "$container" 2>&1 | grep -F -- "$msg") || lines=
        if [ -n "$lines" ] || [ "$(now_ms)" -ge "$deadline" ]; then
            break
        fi
        sleep 0.2
    done
    if [ -z "$lines" ] || [ "$(wc -l <<<"$lines")" -ne 1 ] || ! [[ $lines =~ $re ]]; then
        echo "    $container: expected exactly one line matching $re, got:" >&2
        while IFS= read -r line; do echo "    | $line"; done <<<"${lines:-(none)}" >&2
        return 1
    fi
    ip=${BASH_REMATCH[1]}
    if ! in_subnet "$ip" "$subnet"; then
        echo "    $container: client $ip is not on the network $subnet" >&2
        return 1
    fi
    for not in "$@"; do
        if [ "$ip" = "$not" ]; then
            echo "    $container: client $ip is a receiver, not the sender" >&2
            return 1
        fi
    done
}

# check_stop CONTAINER: `podman stop` (SIGTERM to PID 1, SIGKILL after
# 10 s) returns in under 2 s and the container exited 0, i.e. the binary
# handled SIGTERM itself.
check_stop() {
    local start ms code
    start=$(now_ms)
    podman stop -t 10 "$1" >/dev/null
    ms=$(($(now_ms) - start))
    code=$(podman inspect -f '{{.State.ExitCode}}' "$1")
    if [ "$ms" -lt "$max_stop_ms" ] && [ "$code" = 0 ]; then
        pass "podman stop $1: ${ms} ms, exit status $code"
    else
        fail "podman stop $1: ${ms} ms (limit ${max_stop_ms} ms), exit status $code (want 0)"
    fi
}

# has_labels LABELS_JSON TARGET: the OCI labels the Dockerfile sets.
has_labels() {
    grep -q '"org.opencontainers.image.title":"udp-headless '"$2"'"' <<<"$1" &&
        grep -q '"org.opencontainers.image.description":"[^"]' <<<"$1" &&
        grep -q '"org.opencontainers.image.source":"[^"]' <<<"$1" &&
        grep -q '"org.opencontainers.image.licenses":"Apache-2.0"' <<<"$1" &&
        grep -q '"org.opencontainers.image.version":"0.1.0"' <<<"$1"
}

# ---------------------------------------------------------------------------
# 1. Binaries and images.

build_images() {
    echo "== building the musl binaries and the images ($run)"
    if ! cargo build --release --locked --bins --target "$musl_target" >"$tmp/cargo.log" 2>&1; then
        show "$tmp/cargo.log"
        abort "cargo build --release --target $musl_target"
    fi
    pass "cargo build --release --target $musl_target"

    local revision target image
    revision=$(git rev-parse HEAD 2>/dev/null) || revision=unknown
    for target in receiver sender; do
        image=$receiver_image
        [ "$target" = sender ] && image=$sender_image
        # --pull=never: the test must work with no registry at all, and
        # proves the rust image is not needed with BINARIES=host.
        # --layers=false: no cached intermediate images left behind.
        if ! podman build --pull=never --layers=false --target "$target" \
            --build-arg BINARIES=host --build-arg "REVISION=$revision" \
            -t "$image" . >"$tmp/build-$target.log" 2>&1; then
            show "$tmp/build-$target.log"
            abort "podman build --target $target --build-arg BINARIES=host"
        fi
        pass "podman build --target $target --build-arg BINARIES=host"
    done

    # Without --target (OpenShift's docker strategy has none), IMAGE picks.
    podman build --pull=never --layers=false --build-arg BINARIES=host --build-arg IMAGE=sender \
        -t "$picked_image" . >"$tmp/build-picked.log" 2>&1 || show "$tmp/build-picked.log"
    check "podman build --build-arg IMAGE=sender, no --target: the sender image" \
        test "$(podman image inspect -f '{{json .Config.Entrypoint}}' "$picked_image" 2>/dev/null)" = '["/sender"]'

    # --platform linux/arm64 picks the aarch64 binaries (TARGETARCH); a
    # FROM scratch image builds without emulating arm64.
    local arm64=aarch64-unknown-linux-musl
    if CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
        cargo build --release --locked --bins --target $arm64 >"$tmp/arm64.log" 2>&1 &&
        podman build --pull=never --layers=false --platform linux/arm64 --target receiver \
            --build-arg BINARIES=host -t "$arm64_image" . >>"$tmp/arm64.log" 2>&1 &&
        podman create --name "$run-arm64" --label "udp-headless-test=$run" "$arm64_image" >/dev/null 2>&1 &&
        podman cp "$run-arm64:/receiver" "$tmp/receiver-arm64" >>"$tmp/arm64.log" 2>&1 &&
        [ "$(podman image inspect -f '{{.Architecture}}' "$arm64_image")" = arm64 ] &&
        [ "$(od -An -tu2 -j18 -N2 "$tmp/receiver-arm64")" -eq 183 ]; then # ELF e_machine AArch64
        pass "podman build --platform linux/arm64: an arm64 image with the $arm64 receiver"
    else
        show "$tmp/arm64.log"
        fail "podman build --platform linux/arm64 (BINARIES=host, $arm64 built with rust-lld)"
    fi

    # The default, BINARIES=build, compiles in the rust image, which no
    # registry here can provide: the build must fail for want of exactly
    # that image (proof that the `build` stage was picked: buildah 1.28
    # used to skip it, see the Dockerfile). Where the rust image is present
    # the build simply succeeds.
    local rust_image
    rust_image=$(sed -n 's/^ARG RUST_VERSION=//p' Dockerfile)
    rust_image=docker.io/library/rust:$rust_image-slim
    if podman build --pull=never --layers=false --target receiver \
        -t "$source_image" . >"$tmp/build-source.log" 2>&1; then
        pass "podman build --target receiver (BINARIES=build): built from source in $rust_image"
    elif grep -q "$rust_image: image not known" "$tmp/build-source.log"; then
        pass "podman build --target receiver (BINARIES=build) uses the build stage ($rust_image, not available here)"
    else
        show "$tmp/build-source.log"
        fail "podman build --target receiver (BINARIES=build): failed for another reason than a missing $rust_image"
    fi
}

check_images() {
    echo "== image contents"
    local target image size user entrypoint cmd ports labels
    for target in receiver sender; do
        image=$receiver_image
        [ "$target" = sender ] && image=$sender_image
        size=$(podman image inspect -f '{{.Size}}' "$image")
        if [ "$size" -lt "$max_image_bytes" ]; then
            pass "$target image size: $((size / 1000)) KB ($size bytes) < $((max_image_bytes / 1000)) KB"
        else
            fail "$target image size: $((size / 1000)) KB ($size bytes), limit $((max_image_bytes / 1000)) KB"
        fi
        user=$(podman image inspect -f '{{.Config.User}}' "$image")
        check "$target image USER is numeric non-root 65532:65532 (got '$user')" \
            test "$user" = 65532:65532
        entrypoint=$(podman image inspect -f '{{json .Config.Entrypoint}}' "$image")
        check "$target image ENTRYPOINT is [\"/$target\"] (got $entrypoint)" \
            test "$entrypoint" = "[\"/$target\"]"
        labels=$(podman image inspect -f '{{json .Config.Labels}}' "$image")
        check "$target image has OCI labels title, description, source, licenses Apache-2.0, version 0.1.0" \
            has_labels "$labels" "$target"
    done
    ports=$(podman image inspect -f '{{json .Config.ExposedPorts}}' "$receiver_image")
    check "receiver image exposes 12000/udp (got $ports)" test "$ports" = '{"12000/udp":{}}'
    cmd=$(podman image inspect -f '{{json .Config.Cmd}}' "$sender_image")
    check "sender image default CMD is [\"--idle\"] (got $cmd)" test "$cmd" = '["--idle"]'
}

# ---------------------------------------------------------------------------
# 2. podman: 3 receivers behind the alias headless-udp, one sender.

test_podman() {
    echo "== podman: $replicas receivers as headless-udp on network $network"
    podman network create --label "udp-headless-test=$run" "$network" >/dev/null
    local subnet dns
    subnet=$(podman network inspect -f '{{range .Subnets}}{{.Subnet}}{{end}}' "$network")
    dns=$(podman network inspect -f '{{.DNSEnabled}}' "$network")
    check "network $network ($subnet) has DNS (netavark + aardvark-dns)" test "$dns" = true

    local i name user receivers=() ips=()
    for i in $(seq 1 "$replicas"); do
        name=$run-receiver-$i
        # Receiver 2 runs as an OpenShift-style random UID, the others as
        # the image's USER.
        user=()
        [ "$i" -eq 2 ] && user=(--user "$openshift_user")
        if ! podman run -d --pull=never --name "$name" --label "udp-headless-test=$run" \
            --network "$network" --network-alias headless-udp \
            "${hardening[@]}" "${user[@]}" "$receiver_image" >"$tmp/run.log" 2>&1; then
            show "$tmp/run.log"
            abort "podman run receiver $name"
        fi
        receivers+=("$name")
    done
    for name in "${receivers[@]}"; do
        if wait_ready "$name"; then
            pass "$name ready (podman exec $name /receiver --check)"
        else
            podman logs "$name" >"$tmp/logs.txt" 2>&1 || true
            show "$tmp/logs.txt"
            abort "$name not ready within 10 s"
        fi
        ips+=("$(container_ip "$name")")
    done
    check "${receivers[0]} runs as 65532:65532, no capabilities, no_new_privs, read-only root" \
        runs_as "${receivers[0]}" 65532 65532
    check "${receivers[1]} runs as OpenShift-style $openshift_user, no capabilities, no_new_privs, read-only root" \
        runs_as "${receivers[1]}" "${openshift_user%:*}" "${openshift_user#*:}"

    # The sender, one-off, also as an OpenShift-style UID.
    local status=0
    podman run --rm --pull=never --name "$run-sender" --label "udp-headless-test=$run" \
        --network "$network" "${hardening[@]}" --user "$openshift_user" \
        "$sender_image" -s headless-udp -m "$message" >"$tmp/sender.log" 2>&1 || status=$?
    check "sender -s headless-udp -m $message exited 0 (got $status)" test "$status" = 0
    check "sender logged 'sent message to :IP' once for each receiver (${ips[*]})" \
        check_sender_output "$tmp/sender.log" "${ips[@]}"
    for name in "${receivers[@]}"; do
        check "$name logged the message in the exact format, from the sender" \
            check_received "$name" "$message" "$subnet" "${ips[@]}"
    done

    # The idle sender (the image's default CMD) must stay up and stop fast.
    name=$run-sender-idle
    podman run -d --pull=never --name "$name" --label "udp-headless-test=$run" \
        --network "$network" "${hardening[@]}" "$sender_image" >/dev/null
    sleep 1
    check "$name (default CMD --idle) is still running after 1 s" \
        test "$(podman inspect -f '{{.State.Running}}' "$name")" = true
    check "$name runs as 65532:65532, no capabilities, no_new_privs, read-only root" \
        runs_as "$name" 65532 65532

    # SIGTERM as PID 1: every stop well under podman's 10 s SIGKILL timeout.
    for name in "${receivers[@]}" "$run-sender-idle"; do
        check_stop "$name"
    done
}

# ---------------------------------------------------------------------------
# 3. compose.yaml with podman-compose (1.0.3 on Debian 12).
#
# It uses the images built above (RECEIVER_IMAGE/SENDER_IMAGE override the
# file's image names; `up --no-build` never builds, so nothing is pulled).
# The receivers' service is named headless-udp (see compose.yaml for why),
# and its replicas are found by podman-compose's labels.

# (An array, not a function: bash runs a trap, e.g. Ctrl-C's, with the
# redirections of the function call it interrupted, so on_exit's report
# would end up in a log file that cleanup deletes.)
compose=(env "RECEIVER_IMAGE=$receiver_image" "SENDER_IMAGE=$sender_image"
    podman-compose -p "$compose_project" -f compose.yaml)

# The compose receivers' names and addresses, and the network's subnet
# (set by test_compose).
compose_receivers=()
compose_ips=()
compose_subnet=

# compose_send WHAT MESSAGE COMPOSE_ARGS...: runs the sender through
# podman-compose with COMPOSE_ARGS (which send MESSAGE to headless-udp) and
# checks its output and every compose receiver's log as for podman.
#
# podman-compose 1.0.3 exits 0 even when the command it ran failed: the
# command's status is only in its output, as `exit code: N`, on stdout
# with the podman command lines it prints. Those lines are told apart
# from the sender's by their fixed beginnings. (Later versions print
# neither and pass the status on.)
compose_send() {
    local what=$1 msg=$2 log=$tmp/compose-$1.log
    shift 2
    local status=0 code name
    "${compose[@]}" "$@" >"$log" 2>&1 || status=$?
    code=$(sed -n 's/^exit code: //p' "$log" | tail -n 1)
    code=${code:-$status}
    check "podman-compose $what: sender -s headless-udp -m $msg exited 0 (podman-compose $status, sender ${code:-unknown})" \
        test "$status:$code" = 0:0
    grep -v -e "^\['podman'" -e '^using podman version' -e '^podman ' -e '^exit code: ' \
        "$log" >"$log.out" || true
    check "podman-compose $what: sender logged 'sent message to :IP' once for each replica (${compose_ips[*]})" \
        check_sender_output "$log.out" "${compose_ips[@]}"
    for name in "${compose_receivers[@]}"; do
        check "$name logged the $what message in the exact format, from the sender" \
            check_received "$name" "$msg" "$compose_subnet" "${compose_ips[@]}"
    done
}

test_compose() {
    echo "== podman-compose: compose.yaml as project $compose_project"
    if ! "${compose[@]}" up -d --no-build >"$tmp/compose-up.log" 2>&1; then
        show "$tmp/compose-up.log"
        abort "podman-compose up -d"
    fi
    pass "podman-compose up -d"

    local name status
    mapfile -t compose_receivers < <(podman ps -a --format '{{.Names}}' \
        --filter "label=io.podman.compose.project=$compose_project" \
        --filter "label=com.docker.compose.service=headless-udp" | sort)
    check "compose started $replicas receiver replicas (got ${#compose_receivers[@]}: ${compose_receivers[*]})" \
        test "${#compose_receivers[@]}" -eq "$replicas"
    [ "${#compose_receivers[@]}" -gt 0 ] || abort "no compose receivers to test"
    for name in "${compose_receivers[@]}"; do
        if wait_ready "$name"; then
            pass "$name ready"
        else
            fail "$name not ready within 10 s"
        fi
        compose_ips+=("$(container_ip "$name")")
        check "$name runs as 65532:65532, no capabilities, no_new_privs, read-only root" \
            runs_as "$name" 65532 65532
    done
    check "compose sender (--idle) is running" \
        test "$(podman inspect -f '{{.State.Running}}' "${compose_project}_sender_1" 2>/dev/null)" = true
    compose_subnet=$(podman network inspect -f '{{range .Subnets}}{{.Subnet}}{{end}}' "${compose_project}_default")

    # As a user would: exec into the idle sender...
    # (bare name: the image sets PATH=/, so it works as in the original)
    compose_send exec "$message-exec" exec -T sender sender -s headless-udp -m "$message-exec"
    # ... or one-off with `run --rm`. --no-deps is needed with
    # podman-compose 1.0.3, whose `run` otherwise rebuilds the receiver
    # image (from source: it would pull the rust image).
    compose_send run "$message-run" run -T --rm --no-deps sender -s headless-udp -m "$message-run"

    status=0
    "${compose[@]}" down >"$tmp/compose-down.log" 2>&1 || status=$?
    local left
    left=$(podman ps -aq --filter "label=io.podman.compose.project=$compose_project")
    check "podman-compose down exited 0 (got $status)" test "$status" = 0
    check "podman-compose down removed every container (left: ${left:-none})" test -z "$left"
}

# ---------------------------------------------------------------------------

for tool in cargo podman podman-compose; do
    command -v "$tool" >/dev/null || abort "$tool not found: run scripts/install-deps.sh"
done
build_images
check_images
test_podman
test_compose
cleanup
summary
