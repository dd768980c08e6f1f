# shellcheck shell=bash
# A simulated Kubernetes cluster made of Linux network namespaces, for the
# local demo (scripts/demo.sh local). The tests' cluster is the Rust one in
# tests/it/support (the same layout, with thousands of pods).
#
# Layout (everything lives in namespaces this library creates; the host's own
# network is never touched, and nothing is routed out of the namespaces):
#
#   node netns  "<prefix>node": a Linux bridge br0, the pod network (L2).
#   pod netns   "<prefix><pod>": one veth (eth0) into br0, an address in
#               10.244.0.0/16 (on-link, no default route), and its own
#               /etc/netns/<netns>/{resolv.conf,hosts}, which `ip netns exec`
#               bind-mounts over /etc/resolv.conf and /etc/hosts, written as
#               the kubelet writes them.
#   dns pod     10.244.0.10, dnsmasq: the cluster DNS. It never forwards
#               (no upstream at all) and answers for cluster.local from one
#               hosts file per published pod in a --hostsdir directory.
#
# Address plan: 10.244.0.0/24 infrastructure (dns .10, sender .20);
# 10.244.1.0 and up: pods.
#
# Each pod runs what the manifests say (manifests.sh): the container's
# command and args, its env only, its readiness probe.
#
# Usage: cluster_init BIN_DIR MANIFESTS_DIR; trap cluster_down EXIT;
# cluster_up; then cluster_add_pod / cluster_start / cluster_wait_ready /
# cluster_publish / cluster_exec.

# What every user of it checks with.
# shellcheck source-path=SCRIPTDIR
# shellcheck source=verify.sh
source "$(dirname "${BASH_SOURCE[0]}")/verify.sh"
# shellcheck source=manifests.sh
source "$(dirname "${BASH_SOURCE[0]}")/manifests.sh"

# Settings of the simulated cluster; the scripts read some of them.
# shellcheck disable=SC2034
{
CLUSTER_SERVICE=headless-udp
CLUSTER_K8S_NAMESPACE=default
CLUSTER_DOMAIN=cluster.local
CLUSTER_DNS_IP=10.244.0.10
CLUSTER_SENDER_IP=10.244.0.20
CLUSTER_PREFIX_LEN=16
}

# The service's fully qualified name: what the sender's search list finds.
cluster_service_fqdn() {
    echo "$CLUSTER_SERVICE.$CLUSTER_K8S_NAMESPACE.svc.$CLUSTER_DOMAIN"
}

# Address of the INDEX-th (from 0) one-address pod: 10.244.1.1, 10.244.1.2, ...
cluster_pod_ip() {
    local i=$1
    echo "10.244.$((1 + i / 250)).$((1 + i % 250))"
}

# Sets up the names of this run. Names include the shell's PID and a random
# suffix, so two runs (or two users) never collide.
cluster_init() {
    CLUSTER_BIN_DIR=$1
    CLUSTER_ID="$$$(printf '%04x' "$((RANDOM % 65536))")"
    CLUSTER_PREFIX="uh${CLUSTER_ID}-"
    CLUSTER_NODE="${CLUSTER_PREFIX}node"
    CLUSTER_DIR=$(mktemp -d "${TMPDIR:-/tmp}/udp-headless-cluster.$CLUSTER_ID.XXXXXX")
    CLUSTER_KEEP_DIR=${CLUSTER_KEEP_DIR:-0}
    # dnsmasq drops root and reads the hosts files as "nobody": let it in.
    chmod 711 "$CLUSTER_DIR"
    mkdir -p "$CLUSTER_DIR/logs" "$CLUSTER_DIR/pods"
    mkdir -m 755 "$CLUSTER_DIR/dns" "$CLUSTER_DIR/dns/hosts.d"
    # Remember whether /etc/netns existed, to remove it only if we made it.
    CLUSTER_MADE_ETC_NETNS=0
    [ -d /etc/netns ] || CLUSTER_MADE_ETC_NETNS=1
    CLUSTER_MANIFESTS=$CLUSTER_DIR/manifests.json
    # The keyring Secret (README, "Keys"), as its volume shows it to pods.
    MANIFESTS_SECRETS=$CLUSTER_DIR/secrets
    mkdir -p "$MANIFESTS_SECRETS/udp-headless-keys"
    head -c 32 /dev/urandom | base64 >"$MANIFESTS_SECRETS/udp-headless-keys/keys"
    manifests_render "$2" "$CLUSTER_MANIFESTS"
}

cluster_netns() {
    echo "${CLUSTER_PREFIX}$1"
}

cluster_log() {
    echo "$CLUSTER_DIR/logs/$1.log"
}

# Runs a command inside a pod's network namespace, as `kubectl exec` would:
# with the container's env (and a PATH to the binaries: the images have
# PATH=/, where they are). A command /NAME is the bin dir's NAME.
cluster_exec() {
    cluster_argv "$@"
    "${CLUSTER_ARGV[@]}"
}

# Sets CLUSTER_ARGV to what cluster_exec POD COMMAND ARGS... runs.
cluster_argv() {
    local pod=$1 program=$2 env=()
    shift 2
    [ ! -e "$CLUSTER_DIR/pods/$pod.env" ] || mapfile -d '' -t env <"$CLUSTER_DIR/pods/$pod.env"
    [[ $program != /* ]] || program=$CLUSTER_BIN_DIR/${program##*/}
    CLUSTER_ARGV=(ip netns exec "$(cluster_netns "$pod")" env -i
        "PATH=$CLUSTER_BIN_DIR:/usr/sbin:/usr/bin:/sbin:/bin" "${env[@]}" "$program" "$@")
}

# The node: a namespace holding only the bridge. Pods plug into it.
cluster_up() {
    ip netns add "$CLUSTER_NODE"
    ip -n "$CLUSTER_NODE" link set lo up
    ip -n "$CLUSTER_NODE" link add name br0 type bridge
    ip -n "$CLUSTER_NODE" link set br0 up
    cluster_start_dns
}

# A pod: a namespace with eth0 on the bridge and one address, and the
# /etc/resolv.conf and /etc/hosts the kubelet writes for it (dnsPolicy
# ClusterFirst), in /etc/netns/<netns>/ for `ip netns exec`. StatefulSet
# pods get their DNS name (<pod>.<service>...) in their hosts file, as the
# kubelet does for pods with a hostname and subdomain; bare pods only
# their name.
#   cluster_add_pod POD IP
cluster_add_pod() {
    local pod=$1 ip=$2 netns hosts_line="$2	$1"
    netns=$(cluster_netns "$pod")
    [[ $pod == statefulset-* ]] && hosts_line="$ip	$pod.$(cluster_service_fqdn)	$pod"
    ip netns add "$netns"
    ip -n "$netns" link set lo up
    # The bridge-side end lives in the node namespace, where its name only
    # has to be unique (<= 15 chars): "v" and the address's last two bytes.
    local veth
    veth=$(awk -F. '{ printf "v%d-%d", $3, $4 }' <<<"$ip")
    ip -n "$CLUSTER_NODE" link add name "$veth" type veth peer name eth0 netns "$netns"
    ip -n "$CLUSTER_NODE" link set "$veth" master br0 up
    ip -n "$netns" address add "$ip/$CLUSTER_PREFIX_LEN" dev eth0
    ip -n "$netns" link set eth0 up
    echo "$ip" >"$CLUSTER_DIR/pods/$pod.ip"
    mkdir -p "/etc/netns/$netns"
    printf 'search %s\nnameserver %s\noptions ndots:5\n' \
        "$CLUSTER_K8S_NAMESPACE.svc.$CLUSTER_DOMAIN svc.$CLUSTER_DOMAIN $CLUSTER_DOMAIN" \
        "$CLUSTER_DNS_IP" >"/etc/netns/$netns/resolv.conf"
    printf '# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\n' \
        "$hosts_line" >"/etc/netns/$netns/hosts"
}

# The container CONTAINER of KIND/NAME in the manifests, as POD's main
# process: its stdout and stderr in the pod's log (what `oc logs` shows).
# (The background job is the program itself, not a shell waiting for it.)
#   cluster_start POD KIND NAME CONTAINER
cluster_start() {
    local pod=$1 cmd
    manifests_container "$CLUSTER_MANIFESTS" "$2" "$3" "$4" "$CLUSTER_DIR/pods/$pod"
    mapfile -d '' -t cmd <"$CLUSTER_DIR/pods/$pod.cmd"
    cluster_argv "$pod" "${cmd[@]}"
    "${CLUSTER_ARGV[@]}" >"$(cluster_log "$pod")" 2>&1 &
}

# The manifests' readiness probe until it passes: httpGet on the pod's IP
# (2xx or 3xx, as the kubelet counts it) or exec in the pod; without a
# probe a started pod is ready, as for the kubelet.
#   cluster_wait_ready POD [TIMEOUT_SECONDS]
cluster_wait_ready() {
    local pod=$1 deadline=$((SECONDS + ${2:-10}))
    until cluster_probe "$pod" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            echo "cluster: $pod never became ready (probe: $(cat "$CLUSTER_DIR/pods/$pod.probe")); its log:" >&2
            sed 's/^/  /' "$(cluster_log "$pod")" >&2 || true
            return 1
        fi
        sleep 0.05
    done
}

cluster_probe() {
    local pod=$1 probe=() cmd
    read -r -a probe <"$CLUSTER_DIR/pods/$pod.probe" || true
    case ${probe[0]:-} in
    http)
        # shellcheck disable=SC2016 # expanded by the inner bash
        ip netns exec "$(cluster_netns "$pod")" timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1" &&
            printf "GET %s HTTP/1.0\r\n\r\n" "$2" >&3 && read -r _ code _ <&3 && [[ $code == [23]?? ]]' \
            "$(cat "$CLUSTER_DIR/pods/$pod.ip")" "${probe[1]}" "${probe[2]}"
        ;;
    exec)
        mapfile -d '' -t cmd <"$CLUSTER_DIR/pods/$pod.probe-cmd"
        cluster_exec "$pod" "${cmd[@]}"
        ;;
    esac
}

# Publishes a ready pod's address as the Service's A record (and the pod's
# own StatefulSet name), like the endpoints controller + cluster DNS. One
# hosts file per pod in dnsmasq's --hostsdir, written under a dot-name
# (which dnsmasq ignores) and renamed into place: dnsmasq (inotify) only
# ever reads a complete file.
#   cluster_publish POD IP
cluster_publish() {
    local pod=$1 dir="$CLUSTER_DIR/dns/hosts.d" svc
    svc=$(cluster_service_fqdn)
    printf '%s\t%s\t%s\n' "$2" "$svc" "$pod.$svc" >"$dir/.$pod.tmp"
    chmod 644 "$dir/.$pod.tmp"
    mv -f "$dir/.$pod.tmp" "$dir/$pod"
}

# The cluster DNS: dnsmasq in its own pod. It knows only what is published
# in its hosts directory:
#   --no-resolv --no-hosts   no upstream servers, not even the host's files:
#                            nothing is ever forwarded out
#   --local=/cluster.local/  the cluster domain is ours: an unknown name (or
#                            a Service without ready pods) is NXDOMAIN at once
#   --domain-needed --bogus-priv  bare names and private reverse lookups are
#                            answered locally too
#   --local-ttl=5            TTL 5 s, like the cluster DNS for pod records
# Answers too big for 512 bytes (more than 28 pods) are sent truncated over
# UDP and complete over TCP, which glibc and musl retry with.
cluster_start_dns() {
    local pod=dns netns dnsmasq
    cluster_add_pod "$pod" "$CLUSTER_DNS_IP"
    netns=$(cluster_netns "$pod")
    dnsmasq=$(cluster_dnsmasq)
    ip netns exec "$netns" "$dnsmasq" --keep-in-foreground \
        --conf-file=/dev/null --pid-file= \
        --no-resolv --no-hosts --hostsdir="$CLUSTER_DIR/dns/hosts.d" \
        --local="/$CLUSTER_DOMAIN/" --domain-needed --bogus-priv \
        --local-ttl=5 --listen-address="$CLUSTER_DNS_IP" --bind-interfaces \
        --log-facility="$CLUSTER_DIR/dns/dnsmasq.log" \
        >"$CLUSTER_DIR/logs/dns.log" 2>&1 &
    # Ready when port 53 is bound (the receiver's readiness probe can tell).
    local deadline=$((SECONDS + 10))
    until ip netns exec "$netns" "$CLUSTER_BIN_DIR/receiver" --check --port 53 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            echo "cluster: dnsmasq did not start:" >&2
            cat "$CLUSTER_DIR/logs/dns.log" "$CLUSTER_DIR/dns/dnsmasq.log" >&2 2>/dev/null || true
            return 1
        fi
        sleep 0.05
    done
}

cluster_dnsmasq() {
    command -v dnsmasq || echo /usr/sbin/dnsmasq
}

# Removes everything this run made, whatever state it is in: every process
# in our namespaces (receivers, dnsmasq and its TCP children, senders), the
# namespaces (their veths go with them), /etc/netns/<ours>, the temp dir.
# Finds our namespaces by the run's unique prefix, so it also catches ones a
# failed step left half-made.
cluster_down() {
    [ -n "${CLUSTER_PREFIX:-}" ] || return 0
    local errexit=$-
    set +e
    local -a ours=()
    local netns pid
    mapfile -t ours < <(ip netns list | awk -v p="$CLUSTER_PREFIX" 'index($1, p) == 1 { print $1 }')
    local -a pids=()
    for netns in "${ours[@]}"; do
        mapfile -t -O "${#pids[@]}" pids < <(ip netns pids "$netns" 2>/dev/null)
    done
    if [ "${#pids[@]}" -gt 0 ]; then
        kill -TERM "${pids[@]}" 2>/dev/null
        # Give them a moment to exit cleanly (the receivers flush their logs).
        local tries=0
        while ((tries++ < 30)); do
            local alive=0
            for pid in "${pids[@]}"; do
                kill -0 "$pid" 2>/dev/null && alive=1
            done
            ((alive)) || break
            sleep 0.1
        done
        kill -KILL "${pids[@]}" 2>/dev/null
        # Reap the ones that are this shell's children (receivers, dnsmasq).
        wait "${pids[@]}" 2>/dev/null
    fi
    for netns in "${ours[@]}"; do
        ip netns del "$netns" 2>/dev/null
        rm -rf "/etc/netns/$netns"
    done
    if [ "${CLUSTER_MADE_ETC_NETNS:-0}" = 1 ]; then
        rmdir /etc/netns 2>/dev/null
    fi
    if [ -n "${CLUSTER_DIR:-}" ] && [ "$CLUSTER_KEEP_DIR" != 1 ]; then
        rm -rf "$CLUSTER_DIR"
    fi
    CLUSTER_PREFIX=
    [[ $errexit != *e* ]] || set -e
}
