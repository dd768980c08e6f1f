# shellcheck shell=bash
# shellcheck disable=SC2034 # PLATFORM, RECEIVE_WAIT and FAILED are read by demo.sh, which sources this
# The walkthrough on a real OpenShift/Kubernetes cluster (scripts/demo.sh
# without `local`). Thin on purpose: each step is the oc/kubectl command a
# user would type; the checks are the shared ones in verify.sh, fed with
# `logs` output saved to files. Needs: STS, MESSAGE_1, MESSAGE_2, FAILED,
# step, verdict, unfinished, die_usage, count_arg, usage and REPO from demo.sh.

K8S_TEMPLATE=udp-broadcasting
K8S_DEFAULT_RECEIVER_IMAGE=localhost/udp-headless/receiver:0.1.0
K8S_DEFAULT_SENDER_IMAGE=localhost/udp-headless/sender:0.1.0

k8s_main() {
    K8S_NS=headless-demo
    K8S_RECEIVER_IMAGE=$K8S_DEFAULT_RECEIVER_IMAGE
    K8S_SENDER_IMAGE=$K8S_DEFAULT_SENDER_IMAGE
    K8S_TIMEOUT=300
    K8S_CLEANUP=0
    local replicas=2 scale_to=5
    while [ $# -gt 0 ]; do
        case $1 in
        --namespace | -n) [ $# -ge 2 ] || die_usage "$1 needs a name"; K8S_NS=$2; shift ;;
        --receiver-image) [ $# -ge 2 ] || die_usage "$1 needs an image"; K8S_RECEIVER_IMAGE=$2; shift ;;
        --sender-image) [ $# -ge 2 ] || die_usage "$1 needs an image"; K8S_SENDER_IMAGE=$2; shift ;;
        --replicas) [ $# -ge 2 ] || die_usage "$1 needs a number"; replicas=$(count_arg "$1" "$2"); shift ;;
        --scale-to) [ $# -ge 2 ] || die_usage "$1 needs a number"; scale_to=$(count_arg "$1" "$2"); shift ;;
        --timeout) [ $# -ge 2 ] || die_usage "$1 needs seconds"; K8S_TIMEOUT=$(count_arg "$1" "$2"); shift ;;
        --cleanup) K8S_CLEANUP=1 ;;
        -h | --help) usage; exit 0 ;;
        *) die_usage "unknown option '$1'" ;;
        esac
        shift
    done
    ((scale_to >= replicas)) || die_usage "--scale-to ($scale_to) is less than --replicas ($replicas)"
    # A namespace name is a DNS label.
    [[ $K8S_NS =~ ^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$ ]] ||
        die_usage "'$K8S_NS' is not a valid namespace name"

    k8s_pick_cli
    k8s_check_login
    WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/udp-headless-demo.XXXXXX")
    K8S_MADE_NS=0
    PLATFORM=k8s
    # Pod logs reach the API server with a delay.
    RECEIVE_WAIT=20
    # CoreDNS `cache 30` and NodeLocal DNSCache (30 s) may stack up.
    LIST_WAIT=90
    trap k8s_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    k8s_walkthrough "$replicas" "$scale_to"
}

# oc if installed (OpenShift), else kubectl; says so if neither is.
k8s_pick_cli() {
    if command -v oc >/dev/null 2>&1; then
        K8S_CLI=oc
    elif command -v kubectl >/dev/null 2>&1; then
        K8S_CLI=kubectl
    else
        cat >&2 <<EOF
demo: neither oc nor kubectl is installed (or on PATH).
      Install the OpenShift CLI (oc) or kubectl and log in to your cluster,
      or try the walkthrough on this machine, no cluster needed:
        sudo scripts/demo.sh local
EOF
        exit 3
    fi
}

# Fails early, and clearly, when the CLI cannot reach a cluster or the
# user may not run the demo: pods in the namespace if it exists, else a new
# project (OpenShift's self-provisioners, e.g. `developer` on OpenShift
# Local, may create projects but not namespaces) or namespace.
k8s_check_login() {
    local out new
    if [ "$K8S_CLI" = oc ] && ! out=$(oc whoami --request-timeout=20s 2>&1); then
        echo "demo: oc is not logged in to a cluster (oc whoami: $(tail -n 1 <<<"$out"))." >&2
        echo "      Log in first: oc login --token=... --server=https://api.<cluster>:6443" >&2
        exit 3
    fi
    # OpenShift (it has the Template API): projects, which project admins
    # may delete and self-provisioners create, not namespaces.
    K8S_KIND=namespace new=namespaces
    if [ "$K8S_CLI" = oc ] &&
        oc api-resources --api-group=template.openshift.io -o name 2>/dev/null | grep -q '^templates'; then
        K8S_KIND=project new=projectrequests.project.openshift.io
    fi
    k8s_can create pods -n "$K8S_NS" && return 0
    if k8s_ns_exists; then
        echo "demo: you may not create pods in namespace $K8S_NS ($K8S_CLI auth can-i create pods -n $K8S_NS: no)." >&2
        echo "      Use a namespace you own (--namespace NS) or ask for the edit role there." >&2
    elif k8s_can create "$new"; then
        return 0
    else
        echo "demo: namespace $K8S_NS does not exist (or is not yours), and you may not create one ($K8S_CLI auth can-i create $new: no)." >&2
        echo "      Ask for one (or the self-provisioner role) and pass --namespace NS." >&2
    fi
    exit 3
}

# `auth can-i ARGS`: true if yes, false if no; exits 3 if the cluster
# cannot be asked.
k8s_can() {
    local out
    out=$("$K8S_CLI" auth can-i "$@" --request-timeout=20s 2>&1) || true
    case $(tail -n 1 <<<"$out") in
    yes) return 0 ;;
    no*) return 1 ;;
    esac
    echo "demo: $K8S_CLI cannot reach a cluster, or is not logged in ($K8S_CLI auth can-i $* failed):" >&2
    echo "      $(tail -n 1 <<<"$out")" >&2
    echo "      Log in first ($K8S_CLI config current-context shows which cluster is used; check KUBECONFIG), or try: sudo scripts/demo.sh local" >&2
    exit 3
}

k8s_ns_exists() {
    "$K8S_CLI" get "$K8S_KIND" "$K8S_NS" >/dev/null 2>&1
}

k8s() {
    "$K8S_CLI" -n "$K8S_NS" "$@"
}

# The EXIT trap (errexit off: nothing may stop the cleanup half-way). The
# saved logs stay when the run failed.
k8s_exit() {
    local status=$?
    set +e
    unfinished "$status"
    if [ "$K8S_CLEANUP" = 1 ]; then
        k8s_cleanup || true
    fi
    if [ "$status" = 0 ]; then
        rm -rf "$WORK_DIR"
    else
        echo "demo: the logs of this run are kept in $WORK_DIR"
    fi
    exit "$status"
}

# A project that an earlier run's --cleanup deleted may still be
# terminating: waited for. A name another user has taken (invisible to us)
# is said so.
k8s_create_namespace() {
    local out said=0 deadline=$((SECONDS + K8S_TIMEOUT))
    step "oc new-project $K8S_NS"
    while [ "$("$K8S_CLI" get "$K8S_KIND" "$K8S_NS" -o jsonpath='{.status.phase}' 2>/dev/null)" = Terminating ]; do
        if ((SECONDS >= deadline)); then
            echo "demo: $K8S_KIND $K8S_NS is still terminating after ${K8S_TIMEOUT} s; try later, or --namespace NAME" >&2
            return 1
        fi
        ((said++)) || echo "$K8S_KIND $K8S_NS is terminating (deleted by an earlier run): waiting for it to go"
        sleep 2
    done
    if k8s_ns_exists; then
        echo "$K8S_KIND $K8S_NS exists: using it"
        return 0
    fi
    if [ "$K8S_KIND" = project ]; then
        out=$(oc new-project "$K8S_NS" --skip-config-write 2>&1) || k8s_not_created "$out"
        echo "project $K8S_NS created"
    else
        out=$("$K8S_CLI" create namespace "$K8S_NS" 2>&1) || k8s_not_created "$out"
        echo "$out"
    fi
    K8S_MADE_NS=1
    # The API refuses pods until the namespace's default ServiceAccount
    # exists, which a controller makes a moment after the namespace.
    until k8s get serviceaccount default >/dev/null 2>&1; do
        ((SECONDS < deadline)) || { echo "demo: no default ServiceAccount in $K8S_NS" >&2 && return 1; }
        sleep 1
    done
}

k8s_not_created() {
    echo "demo: cannot create $K8S_KIND $K8S_NS: $(tail -n 1 <<<"$1")" >&2
    if grep -q AlreadyExists <<<"$1"; then
        echo "      The name is taken, by a project you cannot see (another user's): pick another with --namespace NAME" >&2
    fi
    exit 1
}

# The demo's objects, KIND/NAME a line, from the manifests (the Template's
# are the same: check-manifests.sh). Re-runs and --cleanup delete these by
# name: the original walkthrough's objects have the names but not our
# labels, and the namespace's other objects (the relay's) stay.
k8s_objects() {
    "$K8S_CLI" kustomize "$REPO/deployments" |
        awk '/^---/ { k = "" } /^kind: / { k = tolower($2) } /^  name: / && k { print k "/" $2; k = "" }'
    echo pod/sender-nokey
}

# OpenShift: the Template, as in the original walkthrough (oc create -f
# Deploy.yaml; oc process udp-broadcasting | oc create), with parameters.
# Kubernetes: the kustomization, with the images swapped in the rendered
# objects before applying (one apply, no second rollout from `set image`).
k8s_deploy() {
    local replicas=$1 objects
    # Fresh objects in a namespace used before: old receivers would still
    # have the last run's messages in their logs.
    mapfile -t objects < <(k8s_objects)
    ((K8S_MADE_NS)) || k8s delete --ignore-not-found --cascade=foreground \
        --timeout="${K8S_TIMEOUT}s" "${objects[@]}"
    if [ "$K8S_KIND" = project ]; then
        step "oc create -f deployments/Deploy.yaml; oc process $K8S_TEMPLATE -p REPLICAS=$replicas ... | oc create -f -"
        k8s apply -f "$REPO/deployments/Deploy.yaml"
        k8s process "$K8S_TEMPLATE" --ignore-unknown-parameters \
            -p RECEIVER_IMAGE="$K8S_RECEIVER_IMAGE" -p SENDER_IMAGE="$K8S_SENDER_IMAGE" \
            -p REPLICAS="$replicas" | k8s apply -f -
    else
        step "kubectl create secret generic udp-headless-keys --from-file=keys=<(head -c 32 /dev/urandom | base64)" \
            "(unless it exists); kubectl apply -k deployments/ (images: $K8S_RECEIVER_IMAGE, $K8S_SENDER_IMAGE)"
        k8s get secret udp-headless-keys >/dev/null 2>&1 ||
            k8s create secret generic udp-headless-keys --from-file=keys=<(head -c 32 /dev/urandom | base64)
        "$K8S_CLI" kustomize "$REPO/deployments" |
            awk -v r="$K8S_RECEIVER_IMAGE" -v s="$K8S_SENDER_IMAGE" '
                $1 == "image:" && $2 ~ /^localhost\/udp-headless\/receiver(:|@|$)/ { sub(/image: .*/, "image: " r) }
                $1 == "image:" && $2 ~ /^localhost\/udp-headless\/sender(:|@|$)/ { sub(/image: .*/, "image: " s) }
                { print }' |
            k8s apply -f -
        k8s scale "statefulset/$STS" --replicas="$replicas"
    fi
    k8s_podmonitor
}

# deployments/monitoring/, where the Prometheus Operator's PodMonitor kind
# exists and the user may create one (OpenShift: the monitoring-edit role).
k8s_podmonitor() {
    K8S_PODMONITOR=0
    if ! "$K8S_CLI" api-resources --api-group=monitoring.coreos.com -o name 2>/dev/null | grep -q '^podmonitors'; then
        echo "PodMonitor skipped: this cluster has no PodMonitor kind (Prometheus Operator)"
    elif ! k8s_can create podmonitors.monitoring.coreos.com -n "$K8S_NS"; then
        echo "PodMonitor skipped: you may not create podmonitors in $K8S_NS (OpenShift: ask for the monitoring-edit role)"
    else
        k8s apply -f "$REPO/deployments/monitoring/podmonitor.yaml"
        K8S_PODMONITOR=1
    fi
}

# Waits for the receivers (readiness = the UDP socket is bound) and sender-app,
# then for the Service's endpoints to list them all (counted by pod name: a
# dual-stack Service has an IPv4 and an IPv6 EndpointSlice). DNS may lag
# behind: wait_listed waits for it.
k8s_wait_ready() {
    local replicas=$1 ready deadline=$((SECONDS + K8S_TIMEOUT))
    step "oc rollout status statefulset/$STS; oc wait --for=condition=Ready pod/sender-app"
    if ! k8s rollout status "statefulset/$STS" --timeout="${K8S_TIMEOUT}s" ||
        ! k8s wait --for=condition=Ready pod/sender-app --timeout="${K8S_TIMEOUT}s"; then
        k8s_diagnose
        return 1
    fi
    while ready=$(k8s get endpointslices -l "kubernetes.io/service-name=$SERVICE" \
        -o jsonpath='{range .items[*].endpoints[?(@.conditions.ready==true)]}{.targetRef.name}{"\n"}{end}' |
        sort -u | grep -c . || true) && [ "$ready" != "$replicas" ]; do
        if ((SECONDS >= deadline)); then
            echo "demo: the Service $SERVICE has $ready ready endpoints, not $replicas" >&2
            return 1
        fi
        sleep 2
    done
    step "oc get pods -o wide"
    k8s get pods -o wide
}

# Why pods are not ready: their state, the warnings, and a hint for each.
k8s_diagnose() {
    local pods events pod log logs='' crashing
    pods=$(k8s get pods -o wide 2>&1)
    events=$(k8s get events --field-selector type=Warning --sort-by=.lastTimestamp 2>&1 | tail -n 20)
    printf '%s\n%s\n' "$pods" "$events"
    echo "demo: pods not ready after ${K8S_TIMEOUT} s (state and warnings above)" >&2
    # Restarts count too: right after a restart a crash-looping pod shows Running.
    mapfile -t crashing < <(awk '$3 ~ /CrashLoopBackOff|Error/ || $4 + 0 > 0 { print $1 }' <<<"$pods")
    for pod in "${crashing[@]}"; do
        log=$(k8s logs "$pod" --tail=5 2>&1)
        logs+=$log
        echo "      $pod keeps exiting (crash loop); the end of its log ($K8S_CLI logs $pod):" >&2
        printf '        %s\n' "${log//$'\n'/$'\n'        }" >&2
    done
    if grep -q 'exec format error' <<<"$events$logs"; then
        echo "      exec format error: the image is for another CPU architecture than the node. Build it for the" >&2
        echo "      nodes' (podman build --platform linux/arm64 or amd64, or both as one manifest: see Dockerfile)" >&2
    fi
    if grep -qE 'ErrImagePull|ImagePullBackOff|ErrImageNeverPull|InvalidImageName' <<<"$pods"; then
        echo "      an image cannot be pulled: build and push the images, pass --receiver-image and --sender-image" >&2
    fi
    if awk '$2 ~ /^0\// && $3 == "Running" && $4 + 0 == 0 { found = 1 } END { exit !found }' <<<"$pods"; then
        echo "      a running pod is not ready: its readiness probe (GET /readyz on port 9102) fails; see the" >&2
        echo "      Unhealthy warnings above and $K8S_CLI logs POD" >&2
    fi
}

k8s_pod_ip() {
    k8s get pod "$1" -o jsonpath='{.status.podIP}'
}

# The platform functions of demo.sh's shared broadcast/check_receivers.

k8s_sender() {
    k8s exec sender-app -c sender -- sender "$@"
}

# sender-nokey: sender-app's Pod (its labels: the NetworkPolicy admits it)
# without the keyring's env, mount and volume; made at the first call.
k8s_nokey() {
    k8s get pod sender-nokey >/dev/null 2>&1 || { "$K8S_CLI" kustomize "$REPO/deployments" |
        awk -v RS='\n---\n' '/\nkind: Pod\n/' | awk -v i="$K8S_SENDER_IMAGE" '{ match($0, /^ */) }
            skip && (RLENGTH > skip || RLENGTH == skip && /^ *- /) { next } { skip = 0 } /KEY_FILE$/ { getline; next }
            /^ *volume(Mount)?s:$/ { skip = RLENGTH; next } /^  name: sender-app$/ { $0 = "  name: sender-nokey" }
            $1 == "image:" { $0 = "    image: " i } { print }' | k8s apply -f - &&
        k8s wait --for=condition=Ready pod/sender-nokey --timeout="${K8S_TIMEOUT}s"; } >&2
    k8s exec sender-nokey -c sender -- sender "$@"
}

# /metrics through the API server's pod proxy.
k8s_metrics() { k8s get --raw "/api/v1/namespaces/$K8S_NS/pods/$1:9102/proxy/metrics"; }

# Logs reach the API with a delay: poll for the message, a bounded time.
k8s_receiver_log() {
    local pod=$1 message=$2 source=$3 log=$WORK_DIR/$1.log deadline=$((SECONDS + $4))
    while k8s logs "$pod" -c receiver >"$log" 2>&1 &&
        (($(verify_count_received "$log" "$message" "$source") < 1)) && ((SECONDS < deadline)); do
        sleep 1
    done
    echo "$log"
}

k8s_walkthrough() {
    local replicas=$1 scale_to=$2
    FAILED=()
    echo "demo: using $K8S_CLI, namespace $K8S_NS, images $K8S_RECEIVER_IMAGE and $K8S_SENDER_IMAGE"
    k8s_create_namespace
    k8s_deploy "$replicas"
    k8s_wait_ready "$replicas"
    wait_listed "$replicas" 1
    broadcast "$MESSAGE_1" 1
    check_receivers "$replicas" "$MESSAGE_1" "$replicas"

    step "oc scale statefulset/$STS --replicas=$scale_to"
    k8s scale "statefulset/$STS" --replicas="$scale_to"
    k8s_wait_ready "$scale_to"
    wait_listed "$scale_to" 2
    broadcast "$MESSAGE_2" 2
    check_receivers "$scale_to" "$MESSAGE_2" "$replicas"
    check_unsigned "$scale_to"
    echo
    verdict "$replicas" "$scale_to"
}

# Deletes what this run created: the namespace if it made it, else the
# demo's objects in it, by name (the Template's objects, the Template, the
# PodMonitor if it made one).
k8s_cleanup() {
    local objects
    if [ "$K8S_MADE_NS" = 1 ]; then
        step "oc delete project $K8S_NS"
        "$K8S_CLI" delete "$K8S_KIND" "$K8S_NS" --wait=false
        return 0
    fi
    step "oc delete (the demo's objects in $K8S_NS)"
    mapfile -t objects < <(k8s_objects)
    [ "$K8S_KIND" = namespace ] || objects+=("template/$K8S_TEMPLATE")
    [ "${K8S_PODMONITOR:-0}" = 0 ] || objects+=(podmonitor/udp-headless)
    k8s delete --ignore-not-found "${objects[@]}"
}
