#!/usr/bin/env bash
# Container smoke test, as a cluster would run the images (all containers
# --read-only, --cap-drop ALL, no-new-privileges, like the manifests):
#   1. the musl binaries, then the images from them (BINARIES=host: nothing
#      is pulled): size < 600 KB, numeric non-root USER, labels; the
#      IMAGE build argument; an arm64 image from aarch64 binaries;
#   2. podman: 3 receivers sharing the network alias headless-udp (one as an
#      OpenShift-style random UID); the sender sends to headless-udp, every
#      receiver logs it once in the original's exact format; `podman stop`
#      takes < 2 s;
#   3. compose.yaml with podman-compose: up, send by exec and by run, down.
# Needs root, podman (runc, netavark, aardvark-dns) and podman-compose: see
# scripts/install-deps.sh. Everything it creates carries this run's name
# (udp-headless-test-PID) and is removed on exit, also on failure or
# Ctrl-C. Prints PASS/FAIL per check; exit 0 only if nothing failed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

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
max_image_bytes=600000
max_stop_ms=2000
openshift_user=1000770000:0 # restricted-v2 style: random high UID, group 0
hardening=(--read-only --cap-drop ALL --security-opt no-new-privileges)
musl_target=x86_64-unknown-linux-musl
tmp=$(mktemp -d "${TMPDIR:-/tmp}/$run.XXXXXX")

# The fixed text of the original's lines (their format itself, timestamps
# and repr included, is proven by the Rust tests against python3).
sent_text=" - root - INFO - sent message to :"
# MESSAGE: letters, digits and dashes, so its repr is b'MESSAGE'.
received_text() {
    echo " - root - INFO - Message from Client:b'$1' Client IP Address:('"
}

# podman 4.3 here (root, cgroup v1, no systemd) needs runc (crun is not
# installed) and ulimits within the hard limits (its default nofile fails);
# netavark + aardvark-dns answer a network alias with every container
# carrying it, as a headless Service does. Nothing in /etc is touched.
cat >"$tmp/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
[engine]
runtime = "runc"
[network]
network_backend = "netavark"
EOF
export CONTAINERS_CONF=$tmp/containers.conf

passed=0 failed=0 finished=
pass() { passed=$((passed + 1)); echo "PASS: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
# check DESCRIPTION COMMAND...: PASS if COMMAND succeeds.
check() {
    local what=$1
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}
show() { sed 's/^/    | /' "$1" >&2; }
summary() {
    finished=yes
    echo "container-test: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
# abort WHY: a failure the rest cannot go on from.
abort() {
    fail "$*"
    summary || true
    exit 1
}

# Everything this run created, whatever state it is in.
cleanup() {
    local ids label net image
    for label in "udp-headless-test=$run" "io.podman.compose.project=$compose_project"; do
        ids=$(podman ps -aq --filter "label=$label" 2>/dev/null) || ids=
        # shellcheck disable=SC2086 # one id per word
        [ -z "$ids" ] || podman rm -f -t 0 $ids >/dev/null 2>&1 || true
    done
    # podman-compose 1.0.3's `down` leaves its network behind.
    for net in "$network" "${compose_project}_default"; do
        podman network rm -f "$net" >/dev/null 2>&1 || true
    done
    for image in "$receiver_image" "$sender_image" "$source_image" "$arm64_image" "$picked_image"; do
        podman rmi -f "$image" >/dev/null 2>&1 || true
    done
    rm -rf "$tmp"
}
on_exit() {
    local status=$?
    cleanup
    if [ -z "$finished" ]; then
        fail "aborted (exit status $status) before the end of the test"
        summary || true
        exit 1
    fi
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now_ms() { echo $(($(date +%s%N) / 1000000)); }
inspect() { podman inspect -f "$@"; }
image_field() { podman image inspect -f "{{json .Config.$2}}" "$1" 2>/dev/null; }
container_ip() { inspect '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$1"; }

# in_subnet IP A.B.C.D/BITS
in_subnet() {
    local n=0 net=0 word
    for word in $(tr . ' ' <<<"$1"); do n=$((n << 8 | word)); done
    for word in $(tr . ' ' <<<"${2%/*}"); do net=$((net << 8 | word)); done
    (((n ^ net) >> (32 - ${2#*/}) == 0))
}

# wait_ready CONTAINER: `/receiver --check` in it (what /readyz tells the probe), 10 s.
wait_ready() {
    local deadline=$(($(now_ms) + 10000))
    until podman exec "$1" /receiver --check >/dev/null 2>&1; do
        [ "$(now_ms)" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

# runs_as CONTAINER UID GID: its process has that UID and GID, no
# capabilities, no_new_privs, and a read-only root.
runs_as() {
    local status
    status=$(cat "/proc/$(inspect '{{.State.Pid}}' "$1")/status") || return 1
    grep -Eq "^Uid:\s+$2\s" <<<"$status" && grep -Eq "^Gid:\s+$3\s" <<<"$status" &&
        grep -Eq '^CapEff:\s+0+$' <<<"$status" && grep -Eq '^NoNewPrivs:\s+1$' <<<"$status" &&
        [ "$(inspect '{{.HostConfig.ReadonlyRootfs}}' "$1")" = true ]
}
check_runs_as() {
    check "$1 runs as $2:$3, no capabilities, no_new_privs, read-only root" runs_as "$@"
}

# check_sender_output FILE IP...: one well-formed `sent message to :IP`
# line per IP, nothing else.
check_sender_output() {
    local file=$1 line got
    shift
    got=$(while IFS= read -r line; do
        [[ $line == *"$sent_text"* ]] && echo "${line##*"$sent_text"}" || echo "unexpected line: $line"
    done <"$file" | sort)
    [ "$got" = "$(printf '%s\n' "$@" | sort)" ] && return 0
    echo "    expected one line per receiver ($*), got:" >&2
    show "$file"
    return 1
}

# check_received CONTAINER MESSAGE SUBNET RECEIVER_IP...: exactly one
# well-formed line with MESSAGE, from an address in SUBNET (the sender on
# the same network, not NAT'ed) that is no receiver's; waits up to 5 s.
check_received() {
    local container=$1 msg=$2 subnet=$3 lines text ip deadline=$(($(now_ms) + 5000))
    shift 3
    until lines=$(podman logs "$container" 2>&1 | grep -F -- "$msg") || [ "$(now_ms)" -ge "$deadline" ]; do
        sleep 0.2
    done
    text=$(received_text "$msg")
    if [ "$(grep -c . <<<"$lines")" -ne 1 ] || [[ $lines != *"$text"* ]]; then
        echo "    $container: expected exactly one line with \"$text\", got:" >&2
        echo "    | ${lines:-(none)}" >&2
        return 1
    fi
    ip=${lines#*"$text"}
    ip=${ip%%"'"*}
    in_subnet "$ip" "$subnet" || { echo "    $container: client $ip is not on $subnet" >&2; return 1; }
    ! printf '%s\n' "$@" | grep -qx "$ip" || { echo "    $container: client $ip is a receiver" >&2; return 1; }
}

# check_stop CONTAINER: `podman stop` returns in < 2 s with exit status 0:
# the binary, PID 1, handled SIGTERM itself.
check_stop() {
    local start ms code
    start=$(now_ms)
    podman stop -t 10 "$1" >/dev/null
    ms=$(($(now_ms) - start))
    code=$(inspect '{{.State.ExitCode}}' "$1")
    check "podman stop $1: ${ms} ms (limit $max_stop_ms), exit status $code (want 0)" \
        test "$ms" -lt "$max_stop_ms" -a "$code" = 0
}

# ---------------------------------------------------------------------------
# 1. Binaries and images.

# build NAME LOG PODMAN_BUILD_ARGS...: --pull=never (no registry needed, and
# proof that BINARIES=host pulls nothing), --layers=false (no intermediate
# images left behind).
build() {
    podman build --pull=never --layers=false "${@:3}" . >"$tmp/$2" 2>&1
}

build_images() {
    echo "== building the musl binaries and the images ($run)"
    cargo build --release --locked --bins --target "$musl_target" >"$tmp/cargo.log" 2>&1 ||
        { show "$tmp/cargo.log"; abort "cargo build --release --target $musl_target"; }
    pass "cargo build --release --target $musl_target"
    local revision target image
    revision=$(git rev-parse HEAD 2>/dev/null) || revision=unknown
    for target in receiver sender; do
        image=$receiver_image
        [ "$target" = sender ] && image=$sender_image
        build "$target" "build-$target.log" --target "$target" --build-arg BINARIES=host \
            --build-arg "REVISION=$revision" -t "$image" ||
            { show "$tmp/build-$target.log"; abort "podman build --target $target --build-arg BINARIES=host"; }
        pass "podman build --target $target --build-arg BINARIES=host"
    done

    # Without --target (OpenShift's docker strategy has none), IMAGE picks.
    build picked build-picked.log --build-arg BINARIES=host --build-arg IMAGE=sender \
        -t "$picked_image" || show "$tmp/build-picked.log"
    check "podman build --build-arg IMAGE=sender, no --target: the sender image" \
        test "$(image_field "$picked_image" Entrypoint)" = '["/sender"]'

    # --platform linux/arm64 picks the aarch64 binaries (TARGETARCH); a
    # FROM scratch image builds without emulating arm64.
    local arm64=aarch64-unknown-linux-musl
    if CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
        cargo build --release --locked --bins --target $arm64 >"$tmp/arm64.log" 2>&1 &&
        build arm64 build-arm64.log --platform linux/arm64 --target receiver \
            --build-arg BINARIES=host -t "$arm64_image" &&
        podman create --name "$run-arm64" --label "udp-headless-test=$run" "$arm64_image" >/dev/null 2>&1 &&
        podman cp "$run-arm64:/receiver" "$tmp/receiver-arm64" >>"$tmp/arm64.log" 2>&1 &&
        [ "$(podman image inspect -f '{{.Architecture}}' "$arm64_image")" = arm64 ] &&
        [ "$(od -An -tu2 -j18 -N2 "$tmp/receiver-arm64")" -eq 183 ]; then # ELF e_machine AArch64
        pass "podman build --platform linux/arm64: an arm64 image with the $arm64 receiver"
    else
        cat "$tmp/build-arm64.log" >>"$tmp/arm64.log" 2>/dev/null || true
        show "$tmp/arm64.log"
        fail "podman build --platform linux/arm64 (BINARIES=host, $arm64 built with rust-lld)"
    fi

    # The default, BINARIES=build, compiles in the rust image, which no
    # registry here provides: it must fail for want of exactly that image
    # (proof that the `build` stage was picked: buildah 1.28 used to skip
    # it, see the Dockerfile), or succeed where the image is present.
    local rust_image
    rust_image=docker.io/library/rust:$(sed -n 's/^ARG RUST_VERSION=//p' Dockerfile)-slim
    if build source build-source.log --target receiver -t "$source_image"; then
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
    local target image size labels label
    for target in receiver sender; do
        image=$receiver_image
        [ "$target" = sender ] && image=$sender_image
        size=$(podman image inspect -f '{{.Size}}' "$image")
        check "$target image size: $((size / 1000)) KB ($size bytes), limit $((max_image_bytes / 1000)) KB" \
            test "$size" -lt "$max_image_bytes"
        check "$target image USER is numeric non-root 65532:65532" test "$(image_field "$image" User)" = '"65532:65532"'
        check "$target image ENTRYPOINT is [\"/$target\"]" test "$(image_field "$image" Entrypoint)" = "[\"/$target\"]"
        labels=$(image_field "$image" Labels)
        for label in "title\":\"udp-headless $target\"" 'description":"[^"]' 'source":"[^"]' \
            'licenses":"Apache-2.0"' 'version":"0.1.0"'; do
            check "$target image label org.opencontainers.image.${label%%\"*}" \
                grep -q "\"org.opencontainers.image.$label" <<<"$labels"
        done
    done
    check "receiver image exposes 12000/udp" test "$(image_field "$receiver_image" ExposedPorts)" = '{"12000/udp":{}}'
    check "sender image default CMD is [\"--idle\"]" test "$(image_field "$sender_image" Cmd)" = '["--idle"]'
}

# ---------------------------------------------------------------------------
# 2. podman: 3 receivers behind the alias headless-udp, one sender.

test_podman() {
    echo "== podman: $replicas receivers as headless-udp on network $network"
    podman network create --label "udp-headless-test=$run" "$network" >/dev/null
    local subnet i name user receivers=() ips=() status=0
    subnet=$(podman network inspect -f '{{range .Subnets}}{{.Subnet}}{{end}}' "$network")
    check "network $network ($subnet) has DNS (netavark + aardvark-dns)" \
        test "$(podman network inspect -f '{{.DNSEnabled}}' "$network")" = true
    for i in $(seq 1 "$replicas"); do
        name=$run-receiver-$i user=()
        [ "$i" -eq 2 ] && user=(--user "$openshift_user")
        podman run -d --pull=never --name "$name" --label "udp-headless-test=$run" --network "$network" \
            --network-alias headless-udp "${hardening[@]}" "${user[@]}" "$receiver_image" >"$tmp/run.log" 2>&1 ||
            { show "$tmp/run.log"; abort "podman run receiver $name"; }
        receivers+=("$name")
    done
    for name in "${receivers[@]}"; do
        wait_ready "$name" || { podman logs "$name" >&2 || true; abort "$name not ready within 10 s"; }
        pass "$name ready (podman exec $name /receiver --check)"
        ips+=("$(container_ip "$name")")
    done
    check_runs_as "${receivers[0]}" 65532 65532
    check_runs_as "${receivers[1]}" "${openshift_user%:*}" "${openshift_user#*:}"

    # The sender, one-off, also as an OpenShift-style UID.
    podman run --rm --pull=never --name "$run-sender" --label "udp-headless-test=$run" --network "$network" \
        "${hardening[@]}" --user "$openshift_user" "$sender_image" -s headless-udp -m "$message" \
        >"$tmp/sender.log" 2>&1 || status=$?
    check "sender -s headless-udp -m $message exited 0 (got $status)" test "$status" = 0
    check "sender logged 'sent message to :IP' once for each receiver (${ips[*]})" \
        check_sender_output "$tmp/sender.log" "${ips[@]}"
    for name in "${receivers[@]}"; do
        check "$name logged the message in the exact format, from the sender" \
            check_received "$name" "$message" "$subnet" "${ips[@]}"
    done

    # The idle sender (the image's default CMD) stays up and stops fast.
    name=$run-sender-idle
    podman run -d --pull=never --name "$name" --label "udp-headless-test=$run" \
        --network "$network" "${hardening[@]}" "$sender_image" >/dev/null
    sleep 1
    check "$name (default CMD --idle) is still running after 1 s" test "$(inspect '{{.State.Running}}' "$name")" = true
    check_runs_as "$name" 65532 65532
    for name in "${receivers[@]}" "$run-sender-idle"; do
        check_stop "$name"
    done
}

# ---------------------------------------------------------------------------
# 3. compose.yaml with podman-compose 1.0.3 (Debian 12), on the images built
# above (`up --no-build`: nothing is built or pulled). Its receivers are the
# service headless-udp (see compose.yaml), found by podman-compose's labels.
# (An array, not a function: a trap runs with the redirections of the
# function it interrupted, and on_exit's report would go to a log file.)
compose=(env "RECEIVER_IMAGE=$receiver_image" "SENDER_IMAGE=$sender_image"
    podman-compose -p "$compose_project" -f compose.yaml)
compose_receivers=() compose_ips=() compose_subnet=

# compose_send WHAT MESSAGE COMPOSE_ARGS...: the sender through
# podman-compose, checked as for podman. podman-compose 1.0.3 exits 0 even
# when the command failed: the status is its `exit code: N` line, on stdout
# among the podman command lines it prints (told apart by how they begin).
compose_send() {
    local what=$1 msg=$2 log=$tmp/compose-$1.log status=0 code name
    shift 2
    "${compose[@]}" "$@" >"$log" 2>&1 || status=$?
    code=$(sed -n 's/^exit code: //p' "$log" | tail -n 1)
    code=${code:-$status}
    check "podman-compose $what: sender -s headless-udp -m $msg exited 0 (podman-compose $status, sender $code)" \
        test "$status:$code" = 0:0
    grep -v -e "^\['podman'" -e '^using podman version' -e '^podman ' -e '^exit code: ' "$log" >"$log.out" || true
    check "podman-compose $what: sender logged 'sent message to :IP' once for each replica (${compose_ips[*]})" \
        check_sender_output "$log.out" "${compose_ips[@]}"
    for name in "${compose_receivers[@]}"; do
        check "$name logged the $what message in the exact format, from the sender" \
            check_received "$name" "$msg" "$compose_subnet" "${compose_ips[@]}"
    done
}

test_compose() {
    echo "== podman-compose: compose.yaml as project $compose_project"
    "${compose[@]}" up -d --no-build >"$tmp/compose-up.log" 2>&1 ||
        { show "$tmp/compose-up.log"; abort "podman-compose up -d"; }
    pass "podman-compose up -d"
    local name status=0 left
    mapfile -t compose_receivers < <(podman ps -a --format '{{.Names}}' \
        --filter "label=io.podman.compose.project=$compose_project" \
        --filter "label=com.docker.compose.service=headless-udp" | sort)
    check "compose started $replicas receiver replicas (got ${#compose_receivers[@]}: ${compose_receivers[*]})" \
        test "${#compose_receivers[@]}" -eq "$replicas"
    [ "${#compose_receivers[@]}" -gt 0 ] || abort "no compose receivers to test"
    for name in "${compose_receivers[@]}"; do
        check "$name ready" wait_ready "$name"
        compose_ips+=("$(container_ip "$name")")
        check_runs_as "$name" 65532 65532
    done
    check "compose sender (--idle) is running" \
        test "$(inspect '{{.State.Running}}' "${compose_project}_sender_1" 2>/dev/null)" = true
    compose_subnet=$(podman network inspect -f '{{range .Subnets}}{{.Subnet}}{{end}}' "${compose_project}_default")
    # As a user would: exec into the idle sender (a bare `sender`: the image
    # sets PATH=/), or one-off with `run --rm` (--no-deps: podman-compose
    # 1.0.3's `run` would otherwise rebuild the receiver image from source).
    compose_send exec "$message-exec" exec -T sender sender -s headless-udp -m "$message-exec"
    compose_send run "$message-run" run -T --rm --no-deps sender -s headless-udp -m "$message-run"
    "${compose[@]}" down >"$tmp/compose-down.log" 2>&1 || status=$?
    left=$(podman ps -aq --filter "label=io.podman.compose.project=$compose_project")
    check "podman-compose down exited 0 (got $status)" test "$status" = 0
    check "podman-compose down removed every container (left: ${left:-none})" test -z "$left"
}

for tool in cargo podman podman-compose; do
    command -v "$tool" >/dev/null || abort "$tool not found: run scripts/install-deps.sh"
done
build_images
check_images
test_podman
test_compose
summary
