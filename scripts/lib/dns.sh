# shellcheck shell=bash
# A tiny DNS client in bash, so the simulated cluster can check what its DNS
# server really answers without dig/nslookup (not on every machine) and
# without relying on the libc resolver under test.
#
#   dns_query NETNS SERVER NAME [tcp|udp] [A|AAAA]
#
# Runs inside network namespace NETNS, asks SERVER for the A (or AAAA)
# records of NAME and prints one "key value" line per fact, then one "a IP" line per record:
#   rcode NOERROR|NXDOMAIN|SERVFAIL|REFUSED|...
#   tc 0|1          (1: the answer did not fit and was truncated)
#   answers N       (the header's answer count)
#   ttl SECONDS     (of the first A record, if any)
#   a 10.244.1.1
# Returns non-zero if no answer came (timeout, connection refused).

# The query in hex: fixed id 0x5544, recursion desired, one question, type
# A (1) or AAAA (28), class IN (1). No EDNS, like glibc and musl: so UDP answers are capped at
# 512 bytes (28 A records for our names) and larger ones need TCP.
dns_query_hex() {
    local name=$1 type=$2 hex="554401000001000000000000" label
    local -a labels
    IFS=. read -r -a labels <<<"$name"
    for label in "${labels[@]}"; do
        hex+=$(printf '%02x' "${#label}")
        hex+=$(printf '%s' "$label" | od -An -v -tx1 | tr -d ' \n')
    done
    printf '%s00%04x0001' "$hex" "$type"
}

# Hex text to bytes.
dns_hex_to_bytes() {
    local hex=$1 escaped="" i
    for ((i = 0; i < ${#hex}; i += 2)); do
        escaped+="\\x${hex:i:2}"
    done
    printf '%b' "$escaped"
}

dns_query() {
    local netns=$1 server=$2 name=$3 transport=${4:-tcp} type=1 hex
    [ "${5:-A}" = AAAA ] && type=28
    hex=$(dns_query_hex "$name" "$type")
    local len=$((${#hex} / 2))
    if [ "$transport" = tcp ]; then
        # DNS over TCP: each message is preceded by its length (2 bytes).
        # dd reads exactly the 2 length bytes and then the message, so nothing
        # is over-read; the server keeps the connection open, so "read until
        # end of file" would hang.
        hex=$(printf '%04x' "$len")$hex
        # shellcheck disable=SC2016 # $1 is expanded by the inner bash
        dns_hex_to_bytes "$hex" | ip netns exec "$netns" timeout 10 bash -c '
            exec 3<>"/dev/tcp/$1/53" || exit 1
            cat >&3
            read -r hi lo < <(dd bs=1 count=2 status=none <&3 | od -An -tu1)
            [ -n "${lo:-}" ] || exit 1
            dd bs=$((hi * 256 + lo)) count=1 iflag=fullblock status=none <&3
        ' _ "$server" | dns_parse_answer
    else
        # One datagram out, one in: a read() of a UDP socket is one datagram.
        # shellcheck disable=SC2016 # $1 is expanded by the inner bash
        dns_hex_to_bytes "$hex" | ip netns exec "$netns" timeout 5 bash -c '
            exec 3<>"/dev/udp/$1/53" || exit 1
            cat >&3
            dd bs=65536 count=1 status=none <&3
        ' _ "$server" | dns_parse_answer
    fi
}

# The rcode and the number of records, e.g. "NOERROR 4000" or "NXDOMAIN 0".
#   dns_summary NETNS SERVER NAME [tcp|udp] [A|AAAA]
dns_summary() {
    dns_query "$@" | awk '$1 == "rcode" { r = $2 } $1 == "answers" { print r, $2 }'
}

# Reads a DNS message (bytes) on stdin; prints the facts described above.
dns_parse_answer() {
    od -An -v -tu1 | awk '
        { for (i = 1; i <= NF; i++) b[n++] = $i }
        # Skips a (possibly compressed) name at offset p; returns the offset after it.
        function skip_name(p) {
            while (p < n) {
                if (b[p] == 0) return p + 1
                if (b[p] >= 192) return p + 2   # compression pointer
                p += b[p] + 1
            }
            return p
        }
        END {
            if (n < 12) exit 1
            split("NOERROR FORMERR SERVFAIL NXDOMAIN NOTIMP REFUSED", names, " ")
            rcode = b[3] % 16
            print "rcode", (rcode + 1 in names ? names[rcode + 1] : rcode)
            print "tc", int(b[2] / 2) % 2
            answers = b[6] * 256 + b[7]
            print "answers", answers
            p = 12
            for (q = b[4] * 256 + b[5]; q > 0; q--) p = skip_name(p) + 4
            for (a = 0; a < answers && p < n; a++) {
                p = skip_name(p)
                type = b[p] * 256 + b[p + 1]
                ttl = ((b[p + 4] * 256 + b[p + 5]) * 256 + b[p + 6]) * 256 + b[p + 7]
                rdlen = b[p + 8] * 256 + b[p + 9]
                p += 10
                if (type == 1 && rdlen == 4) {
                    if (!seen_ttl++) print "ttl", ttl
                    print "a", b[p] "." b[p + 1] "." b[p + 2] "." b[p + 3]
                }
                p += rdlen
            }
        }'
}
