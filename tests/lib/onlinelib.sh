# Helpers for tests of online licensing: an agent against tpmlic-server
# (serverlib.sh), the test build's movable clock, polling, metrics. Source
# after testlib.sh, agentlib.sh and serverlib.sh.

# online_agent NAME TCTI SERVER-URL [options]: an agent that talks to a server
online_agent() {
    local name=$1 tcti=$2 url=$3
    shift 3
    start_agent "$name" "$tcti" --server "$url" --server-ca "$T/srv-ca.pem" "$@"
}

# the movable clock: "WALL MONO" offsets in seconds
clock_init() {
    echo "0 0" >"$T/clock"
    export TPMLIC_TEST_CLOCK_FILE=$T/clock
    TPMLICD=$B/tpmlicd-testclock
}
clock_advance() { # SECS: time moves on (both clocks)
    local w m
    read -r w m <"$T/clock"
    echo "$((w + $1)) $((m + $1))" >"$T/clock.new" && mv "$T/clock.new" "$T/clock"
}
clock_set_back() { # SECS: the wall clock only
    local w m
    read -r w m <"$T/clock"
    echo "$((w - $1)) $m" >"$T/clock.new" && mv "$T/clock.new" "$T/clock"
}


metric() { # NAME SERIES: one value from /metrics
    api "$1" GET /metrics | awk -v k="$2" '$1 == k {print $2}'
}
near() { [ "${2:-x}" -ge $(($1 - 2)) ] 2>/dev/null && [ "$2" -le $(($1 + 2)) ]; } # A B: within 2 s
validations() { metric "$1" "tpmlic_validations_total{result=\"$2\"}"; }
validations_are() { [ "$(validations "$1" "$2")" = "$3" ]; }

# a server with one license, and an agent activated against it
# setup_online NAME LICENSE-OPTIONS...: leaves $tcti, $url
setup_online() {
    local name=$1
    shift
    vendor_keys
    server_tls srv
    start_server srv
    server_license srv L-1 "$@"
    url=$(cat "$T/srv.url")
    tcti=$(new_tpm "$name.tpm")
}

activate() { # NAME [LICENSE]
    api "$1" POST /v1/management/license "{\"license\": \"${2:-L-1}\"}"
}

activation_json() { # license show --json
    server_cli srv license show L-1 --json
}

