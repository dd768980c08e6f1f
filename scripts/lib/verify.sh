# shellcheck shell=bash
# The demo's log checks, shared by its local and its real-cluster mode
# (which feeds them `oc logs` output saved to files). They compare fixed
# text built from the demo's own plain-ASCII messages and the pods' IPs:
#   receiver: ... - root - INFO - Message from Client:b'test' Client IP Address:('10.130.3.209', 38063)
#   sender:   ... - root - INFO - sent message to :10.128.5.167
# The log format itself (timestamps, Python's repr) is proven by the Rust
# tests against python3; nothing here re-implements it.
# Failures are explained on stderr; functions return non-zero.

# The fixed text of a receiver's line for MESSAGE from SOURCE_IP, up to
# the port. MESSAGE must be plain (its repr is then b'MESSAGE').
verify_receiver_text() {
    if [[ ! $1 =~ ^[A-Za-z0-9._-]*$ ]]; then
        echo "verify: '$1' is not a plain demo message" >&2
        return 1
    fi
    printf "%s" " - root - INFO - Message from Client:b'$1' Client IP Address:('$2', "
}

# How many times a receiver's log shows MESSAGE from SOURCE_IP.
#   verify_count_received LOG MESSAGE SOURCE_IP
verify_count_received() {
    grep -c -F -- "$(verify_receiver_text "$2" "$3")" "$1" || true
}

# Waits until each LOG shows MESSAGE from SOURCE_IP at least its WANT
# times, or TIMEOUT seconds pass (one deadline for all logs). Returns 0
# even on timeout: the exact checks that follow say what is missing.
#   verify_wait_received MESSAGE SOURCE_IP TIMEOUT LOG WANT [LOG WANT]...
verify_wait_received() {
    local message=$1 source=$2 deadline=$((SECONDS + $3))
    shift 3
    while [ $# -gt 0 ]; do
        while (($(verify_count_received "$1" "$message" "$source") < $2)) && ((SECONDS < deadline)); do
            sleep 0.05
        done
        shift 2
    done
}

# Checks that a receiver (pod NAME) logged MESSAGE from SOURCE_IP exactly
# WANT times: fewer is a lost datagram, more a duplicate.
#   verify_received NAME LOG MESSAGE SOURCE_IP WANT
verify_received() {
    local got
    got=$(verify_count_received "$2" "$3" "$4")
    [ "$got" -eq "$5" ] && return 0
    echo "verify: $1 logged b'$3' from $4 $got times, expected $5" >&2
    return 1
}

# Lines in a receiver's log (stdout and stderr, as `oc logs` shows) that
# are neither message lines nor one of its startup lines, in the log
# format: "listening on UDP ..." and, with UDP_HEADLESS_METRICS (which the
# manifests set), "metrics on http://...". Prints them, returns 1.
verify_no_stray_lines() {
    local stray at='^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2},[0-9]{3} - root - INFO - '
    stray=$(grep -v -E -e "${at}Message from Client:b" -e "${at}listening on UDP [^ ]+\$" \
        -e "${at}metrics on http://[^ ]+/metrics\$" -e "${at}key file [^ ]+ reloaded: " "$2" | head -3 || true)
    [ -z "$stray" ] && return 0
    echo "verify: $1 has malformed log lines:" >&2
    printf '%s\n' "$stray" >&2
    return 1
}

# Checks a sender's log: only "sent message to :IP" lines, naming exactly
# the IPs in EXPECTED_FILE (one a line), each once.
#   verify_sender_log LOG EXPECTED_FILE
verify_sender_log() {
    local marker=" - root - INFO - sent message to :" bad sent problems
    bad=$(grep -v -F -- "$marker" "$1" | head -3 || true)
    sent=$(grep -F -- "$marker" "$1" | sed 's/.* - sent message to ://' | sort || true)
    problems=$(
        [ -z "$bad" ] || echo "malformed lines: $bad"
        uniq -d <<<"$sent" | sed 's/^/sent to more than once: /'
        comm -23 <(grep . "$2" | sort -u) <(uniq <<<"$sent") | sed 's/^/not sent to: /'
        comm -13 <(grep . "$2" | sort -u) <(uniq <<<"$sent" | grep . || true) | sed 's/^/not expected: /'
    )
    [ -z "$problems" ] && return 0
    echo "verify: sender log: $(head -5 <<<"$problems" | paste -sd ';' -)" >&2
    return 1
}
