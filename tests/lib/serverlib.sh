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

# start_server NAME [serve options]: tpmlic-server with db $T/NAME.db (a
# --db among the options wins) and the vendor key $T/vendor.key, on
# 127.0.0.1 and a free port; the URL goes to $T/NAME.url (and with
# --admin-listen the admin listener's to $T/NAME.admin-url)
start_server() {
    local n=$1 a admin=()
    shift
    vendor_keys
    server_tls "$n"
    rm -f "$T/$n.port" "$T/$n.admin-port" "$T/$n.admin-url"
    for a in "$@"; do
        [ "$a" = --admin-listen ] && admin=(--admin-port-file "$T/$n.admin-port")
    done
    "$TPMLIC_SERVER" serve --db "$T/$n.db" --key "$T/vendor.key" --listen 127.0.0.1:0 \
        --tls-cert "$T/$n.crt" --tls-key "$T/$n.key" --port-file "$T/$n.port" "${admin[@]}" "$@" \
        >>"$T/$n.log" 2>&1 &
    echo $! >"$T/$n.pid"
    _wait_port "$T/$n.port" "$(cat "$T/$n.pid")" "tpmlic-server $n" || {
        cat "$T/$n.log" >&2
        return 1
    }
    echo "https://127.0.0.1:$(cat "$T/$n.port")" >"$T/$n.url"
    if [ ${#admin[@]} -gt 0 ]; then
        _wait_port "$T/$n.admin-port" "$(cat "$T/$n.pid")" "tpmlic-server $n (admin)"
        echo "https://127.0.0.1:$(cat "$T/$n.admin-port")" >"$T/$n.admin-url"
    fi
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

# ---- requests and answers -------------------------------------------------------

b64url_decode() { # stdin -> stdout
    local s
    s=$(tr -- '-_' '+/')
    case $((${#s} % 4)) in 2) s="$s==" ;; 3) s="$s=" ;; esac
    printf '%s' "$s" | base64 -d
}

# post NAME PATH BODY-FILE [curl options]: the body on stdout, the status in $T/status
post() {
    local n=$1 path=$2 body=$3
    shift 3
    curl -s -o "$T/resp" -w '%{http_code}' --cacert "$T/$n-ca.pem" --max-time 10 \
        -H 'Content-Type: application/json' --data-binary @"$body" "$@" \
        "$(cat "$T/$n.url")$path" >"$T/status" || echo 000 >"$T/status"
    cat "$T/resp"
}
status() { cat "$T/status"; }

# answer_payload: a signed answer ({"answer": JWS} on stdin) checked with
# openssl against $T/vendor.pub; prints the payload JSON
answer_payload() {
    local jws h p s
    jws=$(jq -r .answer)
    IFS=. read -r h p s <<<"$jws"
    [ -n "$s" ] || { fail "not a compact JWS: $jws"; return 1; }
    printf '%s' "$h" | b64url_decode | jq -e '.alg == "EdDSA" and .typ == "tpmlic-answer+jws"' \
        >/dev/null || { fail "answer header: $(printf '%s' "$h" | b64url_decode)"; return 1; }
    printf '%s.%s' "$h" "$p" >"$T/signed.txt"
    printf '%s' "$s" | b64url_decode >"$T/sig.bin"
    openssl pkeyutl -verify -rawin -pubin -inkey "$T/vendor.pub" -sigfile "$T/sig.bin" \
        -in "$T/signed.txt" >/dev/null 2>&1 || { fail "the answer's signature does not verify"; return 1; }
    printf '%s' "$p" | b64url_decode
}

# activation_body FILE: the activate request for an activation certificate
activation_body() {
    jq -n --arg a "$(cat "$1")" '{activation_certificate: $a}'
}

# a license certificate's payload (no verification: inspect does that)
cert_payload() { cut -d. -f2 | b64url_decode; }

# admin NAME TOKEN METHOD PATH [BODY]: an admin API request to server NAME
# (its admin listener when it has one); the body on stdout, the status in
# $T/status, the headers in $T/headers
admin() {
    local n=$1 tok=$2 method=$3 path=$4 body=${5-} url
    local args=(-s -D "$T/headers" -o "$T/resp" -w '%{http_code}' --cacert "$T/$n-ca.pem"
        --max-time 20 -X "$method")
    url=$(cat "$T/$n.admin-url" 2>/dev/null || cat "$T/$n.url")
    [ -n "$tok" ] && args+=(-H "Authorization: Bearer $tok")
    [ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
    curl "${args[@]}" "$url$path" >"$T/status" || echo 000 >"$T/status"
    cat "$T/resp"
}

# server_token NAME SCOPE: a new API token for server NAME's database
server_token() {
    server_cli "$1" token create --scope "$2" --name "test-$2" 2>/dev/null
}

# computer_id_of ACTFILE: the computer ID inside an activation certificate
computer_id_of() {
    tr -d '\n' <"$1" | b64url_decode | jq -r .computer_id
}

# srv_activate NAME ACTFILE [curl options]: POST /v1/activate; the verified
# payload in $T/payload.json, the status in $T/status
srv_activate() {
    local n=$1 f=$2
    shift 2
    activation_body "$f" >"$T/act-req.json"
    post "$n" /v1/activate "$T/act-req.json" "$@" >"$T/answer.json"
    answer_payload <"$T/answer.json" >"$T/payload.json"
}

# srv_check NAME validate|deactivate CODE ACTIVATION COMPUTER EPOCH NEXT COUNTER CONSUMED:
# the request docs/online.md describes (NEXT "" leaves next_epoch out);
# the verified payload in $T/payload.json, the status in $T/status
srv_check() {
    local n=$1 what=$2
    jq -n --arg l "$3" --arg a "$4" --arg c "$5" --arg e "$6" --arg x "$7" \
        --argjson k "$8" --argjson s "$9" \
        '{v: 1, license: $l, activation: $a, computer_id: $c,
          nonce: "00112233445566778899aabbccddeeff", epoch: $e, counter: $k,
          consumed_secs: $s} + (if $x == "" then {} else {next_epoch: $x} end)' \
        >"$T/check-req.json"
    shift 9
    post "$n" "/v1/$what" "$T/check-req.json" "$@" >"$T/answer.json"
    answer_payload <"$T/answer.json" >"$T/payload.json"
}
