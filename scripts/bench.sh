#!/usr/bin/env bash
# Benchmarks udp-headless side by side with the original Python demo, and
# with "floor" programs that do only what the kernel must do. Prints
# Markdown tables (median of several runs, min-max, ratios); docs/BENCHMARKS.md
# holds the latest ones and explains them.
#
#   scripts/bench.sh           the full run (about 5 minutes)
#   scripts/bench.sh --quick   fewer runs and rates (about 1-2 minutes)
#   scripts/bench.sh --relay   only 5. (and the stream-mode rows of 1.)
#
# What it measures, all inside one network namespace of its own:
#   1. sender: broadcast to 2, 1000 and 4000 pods, whole process, start to
#      exit (hyperfine). The Service name is resolved through a real DNS
#      server (dnsmasq, never forwarding) with a Kubernetes pod's
#      resolv.conf. Contestants: the Python sender, our static musl sender,
#      our glibc sender, and examples/sendto_floor.rs (sends to the same
#      addresses, read from a file: no resolution at all).
#   2. receiver: 64-byte datagrams at paced rates (examples/udp_flood.rs),
#      every line logged to a file; lost = sent - lines in the log, and
#      where: the socket's drops counter in /proc/net/udp{,6}. Contestants:
#      our receiver with its default 4 MiB buffer, the same with --metrics
#      on and scraped every 0.5 s, with the kernel's default 208 KiB, the
#      Python receiver, and examples/recv_floor.rs (a bare recv loop, no log).
#   3. sender --confirm to 1000 pods (one receiver answers for all of
#      them), side by side with a plain broadcast; then the time to full
#      confirmation with 10% of datagrams and of acknowledgements dropped
#      (iptables), and whether any receiver line was logged twice.
#   4. footprint: binary and image sizes, the receivers' resident memory.
#   5. relay: copies delivered to 10 and 100 pods (examples/fanout_sink.rs,
#      4 MiB buffers) of 64-byte datagrams from udp_flood, paced and flat
#      out, our relay beside samplicator (built from ../shared/peers when
#      present; UDP_HEADLESS_PEERS overrides). Stream mode: 2000 stdin lines
#      to 10 pods vs sendto_floor's same 20,000 sends.
#
# The original's scripts are used unmodified from $UDP_HEADLESS_SEED
# (default: ../shared/seed next to the repository). Needs root (network
# namespaces), cargo with the musl target, python3, hyperfine and dnsmasq
# (installed with apt if missing), podman optionally (image sizes).
#
# Traffic: only inside the namespace (its loopback; the pods' addresses
# exist only there). Everything it creates (namespace, /etc/netns/<name>,
# processes, temp files, images, a raised net.core.rmem_max) is removed or
# restored on exit, failure or Ctrl-C.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}

quick=0
only=
case "${1:-}" in
    "") ;;
    --quick) quick=1 ;;
    --relay) only=relay ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        echo "bench: unknown argument '$1' (see --help)" >&2
        exit 2
        ;;
esac

# ---------------------------------------------------------------------------
# Settings.

if [ "$quick" = 1 ]; then
    sender_rounds=1  # hyperfine invocations per pod count
    sender_runs=5    # timed runs of each contestant per round
    sender_warmup=1
    recv_trials=1    # trials per (receiver, rate)
    # Datagrams per second; 0 = unpaced, as fast as the load generator can.
    # A paced trial sends for 1 s, and at least 100000 datagrams.
    recv_rates=(25000 50000 100000 200000 0)
    max_rate_count=300000 # datagrams in an unpaced (max rate) trial
else
    sender_rounds=3
    sender_runs=10
    sender_warmup=2
    recv_trials=3
    recv_rates=(25000 50000 75000 100000 150000 200000 250000 300000 0)
    max_rate_count=1000000
fi
pod_counts=(2 1000 4000)
[ "$only" = relay ] && pod_counts=()
relay_trials=$((quick ? 1 : 3))
payload_size=64
port=12000
metrics_port=9102
# The receiver's default ask (4 MiB) and the kernel's default rmem_max.
receiver_rcvbuf=4194304
kernel_default_rcvbuf=212992

seed=${UDP_HEADLESS_SEED:-$repo/../shared/seed}
musl_dir=$repo/target/x86_64-unknown-linux-musl/release
glibc_dir=$repo/target/release
# The Kubernetes pod view: a Service in namespace "default".
service=headless-udp
service_fqdn=$service.default.svc.cluster.local
dns_ip=10.96.0.10
pod_route=10.244.0.0/16

ns=udpbench-$$
tmp=
made_etc_netns=0
rmem_max_before=
images=()

log() { printf 'bench: %s\n' "$*" >&2; }
die() {
    log "$*"
    exit 1
}

# ---------------------------------------------------------------------------
# Cleanup: runs on every exit (normal, error, Ctrl-C).

cleanup() {
    set +e
    local pid pids
    if ip netns list 2>/dev/null | grep -qw "$ns"; then
        # Every process in our namespace is ours: dnsmasq (and its TCP
        # children), the sink socket, a receiver.
        pids=$(ip netns pids "$ns" 2>/dev/null)
        for pid in $pids; do kill -TERM "$pid" 2>/dev/null; done
        sleep 0.2
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
        wait 2>/dev/null
        ip netns del "$ns"
    fi
    rm -rf "/etc/netns/$ns"
    [ "$made_etc_netns" = 1 ] && rmdir /etc/netns 2>/dev/null
    if [ -n "$rmem_max_before" ]; then
        sysctl -q -w "net.core.rmem_max=$rmem_max_before" &&
            log "restored net.core.rmem_max=$rmem_max_before"
    fi
    for image in "${images[@]}"; do podman rmi -f "$image" >/dev/null 2>&1; done
    [ -n "$tmp" ] && rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------
# Prerequisites and builds.

[ "$(id -u)" = 0 ] || die "needs root (network namespaces, sysctl)"
for tool in hyperfine dnsmasq; do
    if ! command -v "$tool" >/dev/null && ! [ -x "/usr/sbin/$tool" ]; then
        package=$tool
        [ "$tool" = dnsmasq ] && package="dnsmasq-base"
        log "installing $package"
        apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$package" >/dev/null
    fi
done
dnsmasq=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)
for file in sender.py receiver.py; do
    [ -f "$seed/$file" ] || die "no $seed/$file (set UDP_HEADLESS_SEED to the original's scripts)"
done
# The real interpreter, not a wrapper (a pyenv shim is a bash script that
# would add ~50 ms to every Python run).
python=${UDP_HEADLESS_PYTHON:-$(python3 -c 'import sys; print(sys.executable)')}

log "building (release: static musl bins and examples, glibc bins)"
cargo build -q --release --target x86_64-unknown-linux-musl --bins --examples
cargo build -q --release --bins

tmp=$(mktemp -d /tmp/udpbench.XXXXXX)
# dnsmasq reads its hosts files after dropping root.
chmod 755 "$tmp"
mkdir "$tmp/results"
sink_log=$tmp/sink.log # every per-pod / per-datagram log goes to a file here

# ---------------------------------------------------------------------------
# The namespace: loopback only. 10.96.0.10 is the cluster DNS; every address
# of 10.244.0.0/16 is local ("pods"), so datagrams to pods land on the
# namespace's loopback. The pod's /etc/resolv.conf and /etc/hosts are
# bind-mounted by `ip netns exec` from /etc/netns/<ns>/.

log "namespace $ns"
[ -d /etc/netns ] || made_etc_netns=1
mkdir -p "/etc/netns/$ns"
cat >"/etc/netns/$ns/resolv.conf" <<EOF
search default.svc.cluster.local svc.cluster.local cluster.local
nameserver $dns_ip
options ndots:5
EOF
printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' >"/etc/netns/$ns/hosts"
ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" addr add "$dns_ip/32" dev lo
ip -n "$ns" route add local "$pod_route" dev lo

in_ns() { ip netns exec "$ns" "$@"; }

# Pod N's address: 10.244.0.1, 10.244.0.2, ... (250 per /24).
write_pods() {
    local count=$1 i ip
    : >"$tmp/hosts.$count"
    : >"$tmp/ips.$count"
    for ((i = 0; i < count; i++)); do
        ip=10.244.$((i / 250)).$((i % 250 + 1))
        printf '%s %s\n' "$ip" "$service_fqdn" >>"$tmp/hosts.$count"
        printf '%s\n' "$ip" >>"$tmp/ips.$count"
    done
    chmod 644 "$tmp/hosts.$count" "$tmp/ips.$count"
}

dnsmasq_pid=
# Serves the Service with COUNT A records; answers nothing else (no
# upstream, no /etc/hosts, every domain local).
start_dns() {
    local count=$1 i
    stop_dns
    # Not through in_ns (a function): $! must be the process itself.
    ip netns exec "$ns" "$dnsmasq" --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
        --local=/#/ --listen-address="$dns_ip" --bind-interfaces \
        --addn-hosts="$tmp/hosts.$count" --pid-file="$tmp/dnsmasq.pid" \
        --log-facility="$tmp/dnsmasq.log" >>"$tmp/dnsmasq.out" 2>&1 &
    dnsmasq_pid=$!
    # Until it listens, each probe would wait out musl's 5 s DNS timeout.
    for ((i = 0; i < 100; i++)); do
        in_ns "$musl_dir/receiver" --check -p 53 2>/dev/null && break
        sleep 0.05
    done
    for ((i = 0; i < 50; i++)); do
        [ "$(pods_reached "$musl_dir/sender" -s "$service" -m probe)" = "$count" ] && return 0
        sleep 0.1
    done
    cat "$tmp/dnsmasq.out" "$tmp/dnsmasq.log" >&2 2>/dev/null
    die "dnsmasq does not serve $count records for $service_fqdn"
}
stop_dns() {
    if [ -n "$dnsmasq_pid" ]; then
        kill "$dnsmasq_pid" 2>/dev/null || true
        wait "$dnsmasq_pid" 2>/dev/null || true
        dnsmasq_pid=
    fi
}

# Runs a sender in the namespace; prints how many pods it logged a send to.
pods_reached() {
    in_ns "$@" >"$sink_log" 2>"$tmp/stderr" || true
    grep -c 'sent message to :' "$sink_log" || true
}

# ---------------------------------------------------------------------------
# 1. Sender.

sender_bench() {
    local count round
    # A socket on the pods' port that nobody reads (so the kernel drops each
    # datagram at it, the same for every contestant), instead of an ICMP
    # "port unreachable" per datagram.
    ip netns exec "$ns" "$python" -c "
import signal, socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', $port))
signal.pause()" &
    local sink_pid=$!

    local -a names=(python musl glibc floor)
    for count in "${pod_counts[@]}"; do
        write_pods "$count"
        start_dns "$count"
        local -a commands=(
            "$python $seed/sender.py -s $service -m test"
            "$musl_dir/sender -s $service -m test"
            "$glibc_dir/sender -s $service -m test"
            "$musl_dir/examples/sendto_floor $tmp/ips.$count test"
        )
        # What each one reached (also a warm-up).
        local i
        for i in "${!names[@]}"; do
            # shellcheck disable=SC2086 # the command is words, on purpose
            printf 'sender\t%s\t%s\t%s\n' "$count" "${names[$i]}" \
                "$(pods_reached ${commands[$i]})" >>"$tmp/results/reached.tsv"
        done
        for ((round = 1; round <= sender_rounds; round++)); do
            log "sender: $count pods, round $round/$sender_rounds"
            local -a args=()
            for i in "${!names[@]}"; do args+=(-n "${names[$i]}" "${commands[$i]}"); done
            in_ns hyperfine -N --style none --warmup "$sender_warmup" --runs "$sender_runs" \
                --output="$sink_log" \
                --export-json "$tmp/results/sender-$count-$round.json" "${args[@]}" \
                >/dev/null 2>"$tmp/hyperfine.err" || {
                cat "$tmp/hyperfine.err" >&2
                die "hyperfine failed"
            }
        done
    done
    # Stream mode: 2000 stdin lines to 10 pods, cached pod list (the
    # default) and resolving per line, vs the same 20,000 sends unresolved.
    write_pods 10
    start_dns 10
    seq 2000 >"$tmp/lines"
    for ((i = 0; i < 2000; i++)); do cat "$tmp/ips.10"; done >"$tmp/ips.20000"
    log "sender: stream mode"
    in_ns hyperfine --style none --warmup 1 --runs "$sender_runs" --output="$sink_log" \
        --export-json "$tmp/results/stream.json" \
        -n cached "$musl_dir/sender -s $service <$tmp/lines" \
        -n per-line "$musl_dir/sender -s $service --refresh 0 <$tmp/lines" \
        -n floor "$musl_dir/examples/sendto_floor $tmp/ips.20000 test" >/dev/null
    stop_dns
    kill "$sink_pid" 2>/dev/null || true
    wait "$sink_pid" 2>/dev/null || true
}

# ---------------------------------------------------------------------------
# 2. Receiver.

# The socket line for our port in /proc/PID/net/udp{,6} (the namespace's
# UDP sockets, as process PID sees them); nothing once PID has exited.
socket_line() {
    awk -v port=":$(printf '%04X' "$port")" '$2 ~ port "$" { print; exit }' \
        "/proc/$1/net/udp" "/proc/$1/net/udp6" 2>/dev/null || true
}
# Bytes waiting in its receive queue (field 5 is tx_queue:rx_queue, in hex).
rx_queue() {
    local queues
    queues=$(socket_line "$1" | awk '{ print $5 }')
    [ -n "$queues" ] && echo $((16#${queues#*:}))
    return 0
}
# Datagrams the kernel dropped because the receive buffer was full.
socket_drops() { socket_line "$1" | awk '{ print $NF }'; }
status_kb() { awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status" 2>/dev/null || true; }

# One trial: start the receiver, flood it, wait until it has logged what it
# will, record, stop it.
recv_trial() {
    local who=$1 rate=$2 trial=$3 count pid i
    count=$((rate > 100000 ? rate : 100000))
    [ "$rate" = 0 ] && count=$max_rate_count
    local -a command
    case $who in
        ours) command=("$musl_dir/receiver") ;;
        metrics) command=("$musl_dir/receiver" --metrics "127.0.0.1:$metrics_port") ;;
        ours208k) command=("$musl_dir/receiver" --rcvbuf "$kernel_default_rcvbuf") ;;
        python) command=("$python" "$seed/receiver.py") ;;
        floor) command=("$musl_dir/examples/recv_floor" "$port" "$count" "$receiver_rcvbuf") ;;
    esac
    ip netns exec "$ns" "${command[@]}" >"$sink_log" 2>"$tmp/stderr" &
    pid=$!
    for ((i = 0; i < 100; i++)); do
        [ -n "$(socket_line "$pid")" ] && break
        sleep 0.05
    done
    [ -n "$(socket_line "$pid")" ] || die "$who did not bind UDP $port: $(cat "$tmp/stderr")"
    local rss_idle
    rss_idle=$(status_kb "$pid" VmRSS)

    local scraper=
    if [ "$who" = metrics ]; then
        # shellcheck disable=SC2016 # expanded by the inner bash
        ip netns exec "$ns" bash -c 'while sleep 0.5; do
            exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "GET /metrics HTTP/1.0\r\n\r\n" >&3 && cat <&3 >/dev/null
            exec 3>&-; done' scrape "$metrics_port" &
        scraper=$!
    fi
    local report
    report=$(in_ns "$musl_dir/examples/udp_flood" --target "127.0.0.1:$port" \
        --rate "$rate" --count "$count" --size "$payload_size")
    # Done when the queue is empty and the log has stopped growing (at most 20 s).
    local lines=-1 now
    for ((i = 0; i < 100; i++)); do
        sleep 0.2
        kill -0 "$pid" 2>/dev/null || break
        now=$(wc -l <"$sink_log")
        [ "$(rx_queue "$pid")" = 0 ] && [ "$now" = "$lines" ] && break
        lines=$now
    done
    if [ -n "$scraper" ]; then
        kill "$scraper"
        wait "$scraper" 2>/dev/null || true
    fi
    local drops hwm cpu
    drops=$(socket_drops "$pid")
    hwm=$(status_kb "$pid" VmHWM)
    # CPU time so far, user + system, in clock ticks (stat fields 14 and 15).
    cpu=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || true)
    if [ "$who" = floor ]; then
        wait "$pid" || true # it stops by itself after 1 s of silence
        lines=$(sed -n 's/^received=\([0-9]*\).*/\1/p' "$sink_log")
    else
        kill -TERM "$pid"
        wait "$pid" || true
        lines=$(wc -l <"$sink_log")
    fi
    # report: sent=N errors=N seconds=S rate=R
    local sent errors achieved
    read -r sent errors achieved < <(awk '{
        for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        print v["sent"], v["errors"], v["rate"] }' <<<"$report")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$who" "$rate" "$trial" "$sent" \
        "$errors" "$achieved" "$lines" "$drops" "$rss_idle" "$hwm" "$cpu" >>"$tmp/results/receiver.tsv"
}

receiver_bench() {
    local trial rate who
    # The receiver asks for 4 MiB; the kernel grants at most rmem_max, which
    # is one setting for the whole machine (not per namespace).
    local rmem_max
    rmem_max=$(sysctl -n net.core.rmem_max)
    if [ "$rmem_max" -lt "$receiver_rcvbuf" ]; then
        rmem_max_before=$rmem_max
        sysctl -q -w "net.core.rmem_max=$receiver_rcvbuf"
        log "raised net.core.rmem_max from $rmem_max to $receiver_rcvbuf (global; restored on exit)"
    fi
    for ((trial = 1; trial <= recv_trials; trial++)); do
        for rate in "${recv_rates[@]}"; do
            log "receiver: trial $trial/$recv_trials, rate ${rate/#0/max}/s"
            # Side by side: each rate is tried on every receiver in turn;
            # ours and metrics swap places each trial, so neither always
            # runs while the other's log is still being written back.
            local first=ours second=metrics
            ((trial % 2)) || { first=metrics second=ours; }
            for who in "$first" "$second" ours208k python floor; do
                recv_trial "$who" "$rate" "$trial"
            done
        done
    done
}

# ---------------------------------------------------------------------------
# 3. sender --confirm. Runs after receiver_bench: the one receiver gets the
# burst of 1000 datagrams, so it needs the raised rmem_max too.

confirm_bench() {
    local send="$musl_dir/sender -s $service -m test"
    write_pods 1000
    start_dns 1000
    ip netns exec "$ns" "$musl_dir/receiver" >"$tmp/confirm.log" 2>/dev/null &
    local receiver_pid=$! rule
    log "sender --confirm: 1000 pods, no loss, then 10% loss each way"
    in_ns hyperfine -N --style none --warmup "$sender_warmup" --runs $((sender_runs * sender_rounds)) \
        --output="$sink_log" --export-json "$tmp/results/confirm.json" \
        -n plain "$send" -n confirm "$send --confirm" >/dev/null
    for rule in --dport --sport; do
        in_ns iptables -A INPUT -p udp "$rule" "$port" -m statistic --mode random --probability 0.1 -j DROP
    done
    in_ns hyperfine -N --style none --runs $((sender_runs * sender_rounds)) --output="$sink_log" \
        --export-json "$tmp/results/confirm-loss.json" -n loss "$send --confirm --timeout 10s" >/dev/null
    kill "$receiver_pid"
    wait "$receiver_pid" || true
    stop_dns
    # A sender run's datagrams all come from one port: a line logged twice
    # would repeat pod address and port.
    cut -c 24- "$tmp/confirm.log" | sort | uniq -d | wc -l >"$tmp/results/confirm-duplicates"
}

# 5. Relay vs samplicator: copies delivered to every pod.

relay_trial() {
    local who=$1 pods=$2 rate=$3 count pid sink i
    # Paced: 2 s. Flat out: 600,000 in (about 2 s), far more than the
    # relay's receive buffer holds, so its forwarding speed decides.
    count=$((rate ? 2 * rate : 600000))
    rm -f "$tmp/sink.ready"
    # The relay gets a core of its own; the load generator and the sinks
    # share the other, so both contestants meet the same competition.
    ip netns exec "$ns" taskset -c 0 "$musl_dir/examples/fanout_sink" "$tmp/ips.$pods" "$port" \
        "$receiver_rcvbuf" "$tmp/sink.ready" >"$tmp/sink.out" &
    sink=$!
    if [ "$who" = relay ]; then
        ip netns exec "$ns" taskset -c 1 "$musl_dir/relay" -s "$service" --listen 127.0.0.1:12001 \
            --rcvbuf "$receiver_rcvbuf" 2>"$tmp/relay.err" &
    else
        # shellcheck disable=SC2046 # one argument per pod
        ip netns exec "$ns" taskset -c 1 "$samplicate" -s 127.0.0.1 -p 12001 -b "$receiver_rcvbuf" \
            $(sed "s|\$|/$port|" "$tmp/ips.$pods") 2>"$tmp/relay.err" &
    fi
    pid=$!
    for ((i = 0; i < 100; i++)); do
        [ -e "$tmp/sink.ready" ] && in_ns "$musl_dir/receiver" --check -p 12001 2>/dev/null &&
            { [ "$who" != relay ] || grep -q "pods: $pods\$" "$tmp/relay.err"; } && break
        sleep 0.05
    done
    local report
    report=$(in_ns taskset -c 0 "$musl_dir/examples/udp_flood" --target 127.0.0.1:12001 \
        --rate "$rate" --count "$count" --size "$payload_size")
    wait "$sink" || die "the sink failed: $(cat "$tmp/sink.out")"
    # CPU time it used, user + system, in clock ticks (fields 14 and 15).
    local ticks
    ticks=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
    kill "$pid" 2>/dev/null || true
    wait "$pid" || true
    printf '%s\t%s\t%s\t%s %s cpu_ticks=%s\n' "$who" "$pods" "$rate" "$report" \
        "$(cat "$tmp/sink.out")" "$ticks" >>"$tmp/results/relay.tsv"
}

relay_bench() {
    local peers=${UDP_HEADLESS_PEERS:-$repo/../shared/peers} pods trial who rate
    local -a who_all=(relay)
    samplicate=$tmp/peers/samplicate
    if [ -x "$peers/build-samplicator.sh" ] && "$peers/build-samplicator.sh" "$tmp/peers" >/dev/null 2>&1; then
        who_all+=(samplicator)
    else
        log "no samplicator (needs $peers/build-samplicator.sh): relay rows alone"
        echo "samplicator: not run, no $peers/build-samplicator.sh" >"$tmp/results/relay-note.txt"
    fi
    for pods in 10 100; do
        write_pods "$pods"
        start_dns "$pods"
        # The same copies per second paced: 20k/s in to 10 pods, 2k/s to 100.
        for rate in $((200000 / pods)) 0; do
            for ((trial = 1; trial <= relay_trials; trial++)); do
                for who in "${who_all[@]}"; do
                    log "relay: $who, $pods pods, rate ${rate/#0/max}/s, trial $trial"
                    relay_trial "$who" "$pods" "$rate"
                done
            done
        done
    done
    stop_dns
}

# ---------------------------------------------------------------------------
# 4. Footprint: binaries and images.

footprint() {
    local name image size
    for name in sender receiver relay; do
        printf 'binary\t%s\t%s\n' "$name" "$(stat -c %s "$musl_dir/$name")" >>"$tmp/results/footprint.tsv"
    done
    command -v podman >/dev/null || return 0
    for name in sender receiver; do
        # Already built ones (the Dockerfile's tag), else a temporary build.
        image=$(podman images --format '{{.Repository}}:{{.Tag}}' 2>/dev/null |
            grep -E "(^|/)udp-headless/$name:" | head -n 1 || true)
        if [ -z "$image" ]; then
            image=localhost/udpbench-$$/$name:latest
            if ! podman build -q --pull=never --layers=false --target "$name" \
                --build-arg BINARIES=host -t "$image" . >"$tmp/podman-$name.log" 2>&1; then
                log "podman build of the $name image failed (see scripts/container-test.sh)"
                continue
            fi
            images+=("$image")
        fi
        size=$(podman image inspect --format '{{.Size}}' "$image")
        printf 'image\t%s\t%s\n' "$name" "$size" >>"$tmp/results/footprint.tsv"
    done
}

# ---------------------------------------------------------------------------
# Run, then format.

started=$(date +%s)
sender_bench
[ "$only" = relay ] || { receiver_bench && confirm_bench && footprint; }
relay_bench
elapsed=$(($(date +%s) - started))

{
    echo "Machine: $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)," \
        "Linux $(uname -r), $(date -u '+%Y-%m-%d %H:%M UTC')."
    echo "net.core.rmem_max $(sysctl -n net.core.rmem_max), rmem_default $(sysctl -n net.core.rmem_default);" \
        "$("$python" --version 2>&1) ($python); hyperfine $(hyperfine --version | awk '{ print $2 }');" \
        "$("$dnsmasq" --version | head -n 1 | awk '{ print $1, $2, $3 }'); $(rustc --version | awk '{ print $1, $2 }')."
    echo "Mode: $([ "$quick" = 1 ] && echo quick || echo full), ${elapsed} s."
} >"$tmp/results/machine.txt"

# Raw results (hyperfine JSON, TSV) and the tables are kept in target/bench/latest.
rm -rf target/bench/latest
mkdir -p target/bench
cp -r "$tmp/results" target/bench/latest
[ "$only" = relay ] || python3 - target/bench/latest <<'PYTHON' >target/bench/latest/tables.md
import glob, json, os, statistics, sys
from collections import defaultdict

results = sys.argv[1]
print(open(os.path.join(results, "machine.txt")).read())

def spread(values, scale=1.0, fmt="{:.1f}"):
    """median (min-max) of values * scale."""
    v = [x * scale for x in values]
    return fmt.format(statistics.median(v)), (fmt + "-" + fmt).format(min(v), max(v))

# --- sender: pooled hyperfine times per (pods, contestant)
labels = {"python": "Python `sender.py`", "musl": "`sender`, static musl (shipped)",
          "glibc": "`sender`, glibc build", "floor": "floor: `sendto_floor`, no DNS"}
times = defaultdict(list)
for path in glob.glob(os.path.join(results, "sender-*.json")):
    pods = int(os.path.basename(path).split("-")[1])
    for r in json.load(open(path))["results"]:
        times[pods, r["command"]] += r["times"]
reached = {}
for line in open(os.path.join(results, "reached.tsv")):
    _, pods, who, n = line.split()
    reached[int(pods), who] = n
print("### Sender: broadcast to N pods, start to exit (ms)\n")
print("| pods | program | median | min-max | Python / this | this / floor | pods reached |")
print("|---:|---|---:|---:|---:|---:|---:|")
for pods in sorted({p for p, _ in times}):
    med = {w: statistics.median(times[pods, w]) for w in labels if (pods, w) in times}
    for who in labels:
        if (pods, who) not in times:
            continue
        m, r = spread(times[pods, who], 1000, "{:.1f}" if med[who] >= 0.01 else "{:.2f}")
        print(f"| {pods} | {labels[who]} | {m} | {r} | {med['python'] / med[who]:.1f}x "
              f"| {med[who] / med['floor']:.2f}x | {reached[pods, who]} |")
n = {len(t) for t in times.values()}
print(f"\n{'/'.join(map(str, sorted(n)))} timed runs per row.\n")

# --- receiver: loss per (contestant, rate)
rlabels = {"ours": "`receiver` (4 MiB buffer)",
           "metrics": "`receiver --metrics`, scraped every 0.5 s (4 MiB)",
           "ours208k": "`receiver --rcvbuf 212992` (208 KiB)",
           "python": "Python `receiver.py` (208 KiB)", "floor": "floor: `recv_floor`, no log (4 MiB)"}
trials = defaultdict(list)
for line in open(os.path.join(results, "receiver.tsv")):
    who, rate, trial, sent, errors, achieved, lines, drops, rss, hwm, cpu = \
        [f or "0" for f in line.rstrip("\n").split("\t")]
    trials[who, int(rate)].append(dict(sent=int(sent), errors=int(errors),
        achieved=float(achieved), lines=int(lines), drops=int(drops),
        rss=int(rss), hwm=int(hwm), cpu=int(cpu) / os.sysconf("SC_CLK_TCK")))
rates = sorted({r for _, r in trials}, key=lambda r: r or 10**9)
def rate_name(r):
    return "max" if r == 0 else f"{r // 1000}k"
print("### Receiver: 64-byte datagrams lost at a paced rate, every one logged to a file\n")
print("Lost % of sent: median (min-max) over trials; the max row also gives the achieved rate.\n")
print("| rate/s | " + " | ".join(rlabels.values()) + " |")
print("|---:|" + "---:|" * len(rlabels))
for rate in rates:
    cells = []
    for who in rlabels:
        t = trials.get((who, rate), [])
        if not t:
            cells.append("")
            continue
        loss = [100.0 * (x["sent"] - x["lines"]) / x["sent"] for x in t]
        m, r = spread(loss, 1, "{:.2f}")
        cell = "0" if max(loss) == 0 else f"{m}% ({r})"
        if rate == 0:
            cell += f" @ {statistics.median(x['achieved'] for x in t) / 1000:.0f}k/s"
        cells.append(cell)
    print(f"| {rate_name(rate)} | " + " | ".join(cells) + " |")
paced = [x["achieved"] / r for (w, r), ts in trials.items() if r for x in ts]
print(f"\nPaced trials achieved {min(paced):.1%}-{max(paced):.1%} of the rate asked.\n")
print("| | " + " | ".join(rlabels.values()) + " |")
print("|---|" + "---|" * len(rlabels))
lossless, first_loss, where = {}, {}, []
for who in rlabels:
    lossless[who] = None
    for rate in rates:
        t = trials.get((who, rate), [])
        if t and all(x["lines"] == x["sent"] for x in t):
            # At max: what the load generator achieved (in the slowest trial).
            lossless[who] = rate or max(lossless[who] or 0, min(x["achieved"] for x in t))
        else:
            first_loss[who] = rate
            break
    lost = sum(x["sent"] - x["lines"] for k, ts in trials.items() if k[0] == who for x in ts)
    drops = sum(x["drops"] for k, ts in trials.items() if k[0] == who for x in ts)
    errs = sum(x["errors"] for k, ts in trials.items() if k[0] == who for x in ts)
    where.append(f"{lost:,} lost: {drops:,} socket drops, {errs:,} send errors, "
                 f"{lost - drops - errs:,} elsewhere")
def lossless_text(who):
    if lossless[who] is None:
        return "lost at every rate tried"
    text = f"{lossless[who]:,.0f}/s"
    if who in first_loss:
        return text + f" (first loss at {rate_name(first_loss[who])})"
    return text + " (every rate tried, max included)"
print("| lossless up to | " + " | ".join(lossless_text(w) for w in rlabels) + " |")
def cpu_per_datagram(who):
    # Over every trial: seconds of CPU (all threads) per datagram received.
    ts = [x for k, xs in trials.items() if k[0] == who for x in xs]
    cpu, lines = sum(x["cpu"] for x in ts), sum(x["lines"] for x in ts)
    return cpu / lines if cpu and lines else None
cpu = {w: cpu_per_datagram(w) for w in rlabels}
print("| CPU per datagram, all trials | "
      + " | ".join(f"{cpu[w] * 1e6:.2f} us" if cpu[w] else "-" for w in rlabels) + " |")
print("| all trials | " + " | ".join(where) + " |")
print()

# --- sender --confirm
confirm = {r["command"]: r["times"] for name in ("confirm", "confirm-loss")
           for r in json.load(open(os.path.join(results, name + ".json")))["results"]}
print("### sender --confirm, 1000 pods (ms, start to exit)\n")
print("| | median | min-max | / plain |\n|---|---:|---:|---:|")
plain = statistics.median(confirm["plain"])
for who, label in (("plain", "plain broadcast"), ("confirm", "`--confirm`, no loss"),
                   ("loss", "`--confirm`, 10% loss each way: all 1000 confirmed")):
    m, r = spread(confirm[who], 1000, "{:.0f}" if who == "loss" else "{:.1f}")
    ratio = "" if who == "loss" else f"{statistics.median(confirm[who]) / plain:.2f}x"
    print(f"| {label} | {m} | {r} | {ratio} |")
duplicates = int(open(os.path.join(results, "confirm-duplicates")).read())
print(f"\nLines logged twice by the receiver over all runs: {duplicates}.\n")

# --- footprint
print("### Footprint\n")
rows = [l.split("\t") for l in open(os.path.join(results, "footprint.tsv"))] \
    if os.path.exists(os.path.join(results, "footprint.tsv")) else []
for kind, name, size in rows:
    print(f"- {kind} `{name}`: {int(size):,} bytes ({int(size) / 1024:.0f} KiB)")
if not any(r[0] == "image" for r in rows):
    print("- images: podman not available here (scripts/container-test.sh builds them)")
print()
print("| receiver | VmRSS idle (KiB) | VmHWM, peak over the max-rate trials (KiB) |")
print("|---|---:|---:|")
for who in rlabels:
    idle = [x["rss"] for k, ts in trials.items() if k[0] == who for x in ts]
    peak = max(x["hwm"] for x in trials.get((who, 0), []) or [{"hwm": 0}])
    if idle:
        print(f"| {rlabels[who]} | {statistics.median(idle):.0f} | {peak or '-'} |")
print()

# --- targets
def verdict(ok):
    return "met" if ok else "MISSED"
print("### Targets\n")
if (1000, "musl") in times:
    med = {w: statistics.median(times[1000, w]) for w in labels}
    speedup = med["python"] / med["musl"]
    to_floor = med["musl"] / med["floor"]
    print(f"- sender, 1000 pods: {speedup:.1f}x faster than Python (target 15x): {verdict(speedup >= 15)}")
    print(f"- sender, 1000 pods: {to_floor:.2f}x the floor (target at most 2x): {verdict(to_floor <= 2)}")
if lossless.get("ours") and lossless.get("python"):
    ratio = lossless["ours"] / lossless["python"]
    at_max = "ours" not in first_loss
    print(f"- receiver: lossless at the load generator's maximum: {verdict(at_max)}")
    print(f"- receiver: lossless rate {ratio:.1f}x Python's{' (at least: no loss at max)' if at_max else ''}"
          f" (target 5x): {verdict(ratio >= 5)}")
ratio = statistics.median(confirm["confirm"]) / plain
print(f"- sender --confirm, 1000 pods, no loss: {ratio:.2f}x a plain broadcast (target at most 2x): "
      f"{verdict(ratio <= 2)}")
print(f"- sender --confirm: no line logged twice: {verdict(duplicates == 0)}")
if lossless.get("ours") and lossless.get("metrics"):
    ratio = lossless["metrics"] / lossless["ours"]
    print(f"- receiver: lossless rate with --metrics {ratio:.1%} of without"
          f" (target at least 95%): {verdict(ratio >= 0.95)}")
if cpu.get("ours") and cpu.get("metrics"):
    print(f"- receiver: CPU per datagram with --metrics {cpu['metrics'] / cpu['ours']:.1%} of without")
for kind, name, size in rows:
    print(f"- {kind} `{name}` under 600 KB: {int(size):,} bytes: {verdict(int(size) < 600_000)}")
PYTHON
python3 - target/bench/latest <<'PYTHON' >>target/bench/latest/tables.md
import json, os, statistics, sys
from collections import defaultdict

results = sys.argv[1]

def rate_name(r):
    return "max" if r == 0 else f"{r // 1000}k"

def verdict(ok):
    return "met" if ok else "MISSED"

# --- relay vs samplicator, and the sender's stream mode
rows = defaultdict(list)
relay_tsv = os.path.join(results, "relay.tsv")
for line in open(relay_tsv) if os.path.exists(relay_tsv) else []:
    who, pods, rate, kv = line.rstrip("\n").split("\t")
    v = dict(x.split("=") for x in kv.split())
    rows[int(pods), int(rate), who].append({k: float(x) for k, x in v.items()})
tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
if rows:
    print("### Relay: 64-byte datagrams in, a copy to every pod (copies delivered)\n")
    note = os.path.join(results, "relay-note.txt")
    if os.path.exists(note):
        print(open(note).read())
    print("| pods | rate in | program | copies delivered: median (min-max) | of those sent | per pod min-max "
          "| in at | CPU per copy |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|")
    verdicts = []
    for pods, rate in sorted({(p, r) for p, r, _ in rows}, key=lambda k: (k[0], k[1] or 10**9)):
        best = {}  # median copies delivered
        for who in ("relay", "samplicator"):
            t = rows.get((pods, rate, who))
            if not t:
                continue
            pct = [100.0 * x["received"] / (x["sent"] * pods) for x in t]
            best[who] = statistics.median(x["received"] for x in t)
            got = [x["received"] for x in t]
            print(f"| {pods} | {rate_name(rate)}/s | `{who}` | {statistics.median(got):,.0f} "
                  f"({min(got):,.0f}-{max(got):,.0f}) | {statistics.median(pct):.2f}% "
                  f"| {min(x['min'] for x in t):,.0f}-{max(x['max'] for x in t):,.0f} "
                  f"| {statistics.median(x['rate'] for x in t) / 1000:.1f}k/s "
                  f"| {statistics.median(x['cpu_ticks'] * tick_us / x['received'] for x in t):.2f} us |")
        if "samplicator" in best:
            verdicts.append(f"{pods} pods, {rate_name(rate)}: relay {best['relay']:,.0f} copies vs samplicator "
                            f"{best['samplicator']:,.0f}: {verdict(best['relay'] >= best['samplicator'])}")
        if rate:
            lossless = all(x["received"] == x["sent"] * pods for x in rows[pods, rate, "relay"])
            verdicts.append(f"{pods} pods, {rate_name(rate)}: relay without loss: {verdict(lossless)}")
    print("\n" + "\n".join(f"- {v}" for v in verdicts) + "\n")
stream = os.path.join(results, "stream.json")
if os.path.exists(stream):
    med = {r["command"]: statistics.median(r["times"]) for r in json.load(open(stream))["results"]}
    print("### Sender stream mode: 2000 stdin lines to 10 pods (ms)\n")
    print("| program | median | / floor |")
    print("|---|---:|---:|")
    for who, label in (("cached", "`sender` (pod list cached by TTL)"),
                       ("per-line", "`sender --refresh 0` (resolves per line)"),
                       ("floor", "floor: `sendto_floor`, the same 20,000 sends")):
        print(f"| {label} | {med[who] * 1000:.1f} | {med[who] / med['floor']:.2f}x |")
    ratio = med["cached"] / med["floor"]
    print(f"\n- stream mode {ratio:.2f}x the floor (target at most 1.5x): {verdict(ratio <= 1.5)}")
PYTHON
cat target/bench/latest/tables.md
