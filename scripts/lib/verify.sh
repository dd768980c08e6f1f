# shellcheck shell=bash
# Checks of the demo's log lines, shared by the local demo, the scale test
# and the real-cluster demo (which feeds them `oc logs` output saved to a
# file), so the checks that run in CI are the ones users rely on.
#
# Receiver (one line per datagram, the original demo's format):
#   2021-08-22 20:20:56,167 - root - INFO - Message from Client:b'test' Client IP Address:('10.130.3.209', 38063)
# Sender (one line per pod):
#   2021-08-02 12:44:46,383 - root - INFO - sent message to :10.128.5.167
#
# Every check matches the WHOLE line: a line with the right words but a
# wrong timestamp, logger, level or quoting does not count.
# Failures are explained on stderr; functions return non-zero.

VERIFY_TIME='[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2},[0-9]{3}'
VERIFY_PREFIX="^$VERIFY_TIME - root - INFO - "

# Python's repr() of a bytes object, as the receiver prints the payload:
# b'test', b"it's", b'a\\b', b'\xff'.
verify_pyrepr() {
    local quote="'"
    if [[ $1 == *"'"* && $1 != *'"'* ]]; then
        quote='"'
    fi
    printf '%s' "$1" | od -An -v -tu1 | awk -v q="$quote" '
        BEGIN { out = "b" q }
        {
            for (i = 1; i <= NF; i++) {
                c = $i
                if (c == 92) out = out "\\\\"
                else if (c == 9) out = out "\\t"
                else if (c == 10) out = out "\\n"
                else if (c == 13) out = out "\\r"
                else if (c == 39 && q == "\x27") out = out "\\\x27"
                else if (c < 32 || c >= 127) out = out sprintf("\\x%02x", c)
                else out = out sprintf("%c", c)
            }
        }
        END { print out q }'
}

# Escapes text for use inside an extended regular expression.
verify_regex_escape() {
    printf '%s' "$1" | sed 's/[][\.*^$?+(){}|/]/\\&/g'
}

# The whole-line regex for MESSAGE received from SOURCE_IP (any port).
verify_receiver_regex() {
    local repr ip
    repr=$(verify_regex_escape "$(verify_pyrepr "$1")")
    ip=$(verify_regex_escape "$2")
    echo "${VERIFY_PREFIX}Message from Client:$repr Client IP Address:\('$ip', [0-9]{1,5}\)\$"
}

# How many times a receiver's log shows MESSAGE from SOURCE_IP.
#   verify_count_received LOG MESSAGE SOURCE_IP
verify_count_received() {
    grep -c -E -- "$(verify_receiver_regex "$2" "$3")" "$1" || true
}

# Waits until each LOG shows MESSAGE from SOURCE_IP at least its WANT
# times, or TIMEOUT seconds pass (one deadline for all logs): UDP delivery
# and the receivers' log writes are asynchronous to the sender's exit.
# Returns 0 even on timeout: the exact checks that follow say what is missing.
#   verify_wait_received MESSAGE SOURCE_IP TIMEOUT LOG WANT [LOG WANT]...
verify_wait_received() {
    local regex deadline=$((SECONDS + $3)) got
    regex=$(verify_receiver_regex "$1" "$2")
    shift 3
    while [ $# -gt 0 ]; do
        while got=$(grep -c -E -- "$regex" "$1" || true) && ((got < $2)) && ((SECONDS < deadline)); do
            sleep 0.05
        done
        shift 2
    done
}

# Checks that a receiver (pod NAME) logged MESSAGE from SOURCE_IP exactly
# WANT times: fewer is a lost datagram, more a duplicate.
#   verify_received NAME LOG MESSAGE SOURCE_IP WANT
verify_received() {
    local name=$1 log=$2 message=$3 source=$4 want=$5 got
    got=$(verify_count_received "$log" "$message" "$source")
    if [ "$got" -eq "$want" ]; then
        return 0
    fi
    echo "verify: $name logged $(verify_pyrepr "$message") from $source $got times, expected $want" >&2
    # Show lines that mention the message but did not match, if any: a
    # format problem rather than a lost datagram.
    local near
    near=$(grep -F -- "$(verify_pyrepr "$message")" "$log" | grep -v -E -- "$(verify_receiver_regex "$message" "$source")" | head -3 || true)
    if [ -n "$near" ]; then
        echo "verify: $name lines that do not match the expected format or source:" >&2
        verify_indent <<<"$near" >&2
    fi
    return 1
}

# Lines in a receiver's log that are not well-formed message lines (any
# payload, any source), other than the receiver's own startup line (on its
# stderr, which `oc logs` shows too): prints them; returns non-zero if any.
verify_no_stray_lines() {
    local name=$1 log=$2 stray
    stray=$(grep -v -E -e "${VERIFY_PREFIX}Message from Client:b('.*'|\".*\") Client IP Address:\('[0-9a-f.:]+', [0-9]{1,5}\)\$" \
        -e "${VERIFY_PREFIX}listening on UDP " "$log" | head -3 || true)
    if [ -n "$stray" ]; then
        echo "verify: $name has malformed log lines:" >&2
        verify_indent <<<"$stray" >&2
        return 1
    fi
}

# Checks a sender's log: every line is a well-formed "sent message to :IP"
# line, and the IPs are exactly the expected set (one per line in
# EXPECTED_FILE), each sent to once. Prints what is missing, extra or doubled.
#   verify_sender_log LOG EXPECTED_FILE
verify_sender_log() {
    local log=$1 expected=$2 bad sent
    bad=$(grep -v -E -- "${VERIFY_PREFIX}sent message to :[0-9a-f.:]+\$" "$log" | head -3 || true)
    if [ -n "$bad" ]; then
        echo "verify: sender log has malformed lines:" >&2
        verify_indent <<<"$bad" >&2
        return 1
    fi
    sent=$(sed 's/.* - sent message to ://' "$log" | sort)
    local doubled missing extra ok=0
    doubled=$(uniq -d <<<"$sent")
    missing=$(comm -23 <(sort -u "$expected") <(uniq <<<"$sent"))
    extra=$(comm -13 <(sort -u "$expected") <(uniq <<<"$sent" | grep . || true))
    _verify_report "sent to more than once" "$doubled" || ok=1
    _verify_report "expected but not sent to" "$missing" || ok=1
    _verify_report "sent to but not expected" "$extra" || ok=1
    return "$ok"
}

# Indents stdin by four spaces (for quoted log lines).
verify_indent() {
    sed 's/^/    /'
}

# Prints "verify: N addresses WHAT: a b c ..." if LIST (lines) is not empty.
_verify_report() {
    local what=$1 list=$2
    [ -n "$list" ] || return 0
    echo "verify: $(wc -l <<<"$list") addresses $what: $(head -5 <<<"$list" | tr '\n' ' ')$( (($(wc -l <<<"$list") > 5)) && echo ...)" >&2
    return 1
}
