# Helpers for tests that run tpmlic-server (TLS on loopback, SQLite in $T)
# and the fault-injecting proxy in front of it. Source after testlib.sh and
# agentlib.sh; everything lives under $T, and the pid files make testlib
# stop the processes after each test.
TPMLIC_SERVER=$B/tpmlic-server
FAULTPROXY=$TPMLIC_SRCDIR/tests/lib/faultproxy.py

# server_tls NAME: a CA ($T/NAME-ca.pem) and a server certificate for
# 127.0.0.1 and localhost ($T/NAME.crt, $T/NAME.key), made once
server_tls() {
    local n=$1
    [ -f "$T/$n.crt" ] && return 0
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -keyout "$T/$n-ca.key" -out "$T/$n-ca.pem" -subj "/CN=tpmlic test CA $n" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$T/$n.key" -out "$T/$n.csr" -subj "/CN=127.0.0.1" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$T/$n.ext"
    openssl x509 -req -in "$T/$n.csr" -CA "$T/$n-ca.pem" -CAkey "$T/$n-ca.key" \
        -CAcreateserial -days 2 -extfile "$T/$n.ext" -out "$T/$n.crt" 2>/dev/null
    [ -f "$T/$n.crt" ] || fail "cannot make the TLS certificate for $n"
}

# _wait_port FILE PID WHAT: waits until FILE holds a port
_wait_port() {
    local i
    for i in $(seq 1 100); do
        [ -s "$1" ] && return 0
        kill -0 "$2" 2>/dev/null || break
        sleep 0.05
    done
    fail "$3 did not start"
}

# start_server NAME [serve options]: tpmlic-server with db $T/NAME.db and the
# vendor key $T/vendor.key, on 127.0.0.1 and a free port; the URL goes to
# $T/NAME.url
start_server() {
    local n=$1
    shift
    vendor_keys
    server_tls "$n"
    rm -f "$T/$n.port"
    "$TPMLIC_SERVER" serve --db "$T/$n.db" --key "$T/vendor.key" --listen 127.0.0.1:0 \
        --tls-cert "$T/$n.crt" --tls-key "$T/$n.key" --port-file "$T/$n.port" "$@" \
        >>"$T/$n.log" 2>&1 &
    echo $! >"$T/$n.pid"
    _wait_port "$T/$n.port" "$(cat "$T/$n.pid")" "tpmlic-server $n" || {
        cat "$T/$n.log" >&2
        return 1
    }
    echo "https://127.0.0.1:$(cat "$T/$n.port")" >"$T/$n.url"
}

# stop_server NAME: SIGTERM; it must exit 0 (under SANITIZE=1 a leak fails)
stop_server() {
    local pid rc=0
    pid=$(cat "$T/$1.pid" 2>/dev/null) || return 0
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || rc=$?
    rm -f "$T/$1.pid"
    [ "$rc" = 0 ] || fail "tpmlic-server $1 exited with status $rc after SIGTERM: $(tail -n 20 "$T/$1.log")"
}

# server_cli NAME ARGS...: tpmlic-server ARGS --db $T/NAME.db
server_cli() {
    local n=$1
    shift
    "$TPMLIC_SERVER" "$@" --db "$T/$n.db"
}

# server_license NAME CODE [license create options]
server_license() {
    local n=$1 code=$2
    shift 2
    server_cli "$n" license create --code "$code" --product speech --customer-id 4949 "$@" \
        >/dev/null || fail "license create $code failed"
}

# start_faultproxy NAME SERVER: the fault proxy in front of server SERVER;
# its URL goes to $T/NAME.url, its mode to $T/NAME.mode, requests to
# $T/NAME.requests
start_faultproxy() {
    local n=$1 s=$2
    echo pass >"$T/$n.mode"
    rm -f "$T/$n.port"
    python3 "$FAULTPROXY" --cert "$T/$s.crt" --key "$T/$s.key" --ca "$T/$s-ca.pem" \
        --upstream "127.0.0.1:$(cat "$T/$s.port")" --mode-file "$T/$n.mode" \
        --port-file "$T/$n.port" --log "$T/$n.requests" --vendor-key "$T/vendor.key" \
        >>"$T/$n.log" 2>&1 &
    echo $! >"$T/$n.pid"
    _wait_port "$T/$n.port" "$(cat "$T/$n.pid")" "fault proxy $n"
    echo "https://127.0.0.1:$(cat "$T/$n.port")" >"$T/$n.url"
}

# faultproxy_mode NAME MODE [ARGS...]: what the proxy does from the next request on
faultproxy_mode() {
    local n=$1
    shift
    echo "$*" >"$T/$n.mode.new" && mv "$T/$n.mode.new" "$T/$n.mode"
}
