# Helpers for tests that run tpmlicd on a swtpm and talk to it with curl
# over its UNIX socket. Source after testlib.sh; everything lives under $T.
TPMLICD=$B/tpmlicd
VENDOR=$B/tpmlic-vendor

# new_tpm NAME: manufacture and start a swtpm in $T/NAME; prints the TCTI
new_tpm() {
    "$SWTPM_CTL" manufacture "$T/$1" --ca "${TPMLIC_TEST_CA:-/tmp/tpmlic-test-ca-$(id -u)}" >/dev/null
    "$SWTPM_CTL" start "$T/$1"
}

# vendor_keys: a vendor key pair in $T/vendor.key, $T/vendor.pub
vendor_keys() {
    [ -f "$T/vendor.key" ] || "$VENDOR" keygen --private "$T/vendor.key" --public "$T/vendor.pub" >/dev/null
}

# start_agent NAME TCTI [extra options]: runs tpmlicd with its socket at
# $T/NAME.sock and its state in $T/NAME.state; waits until it answers.
start_agent() {
    local name=$1 tcti=$2 i
    shift 2
    rm -f "$T/$name.sock"
    "$TPMLICD" --config /dev/null --tcti "$tcti" --socket "$T/$name.sock" \
        --state-dir "$T/$name.state" --vendor-key "$T/vendor.pub" --tpm-watch 1 \
        --socket-mode 0666 --service-group 4242 --admin-group 4343 "$@" \
        >>"$T/$name.log" 2>&1 &
    echo $! >"$T/$name.pid"
    for i in $(seq 1 200); do
        curl -s --max-time 1 --unix-socket "$T/$name.sock" http://localhost/v1/status >/dev/null 2>&1 && return 0
        kill -0 "$(cat "$T/$name.pid")" 2>/dev/null || break
        sleep 0.05
    done
    cat "$T/$name.log" >&2
    fail "agent $name did not start"
}

# stop_agent NAME [SIGNAL]: stops it (TERM: orderly; KILL: a crash)
# After an orderly stop the agent must exit 0: under SANITIZE=1 a leak or
# memory error found at exit makes it fail, and so the test.
stop_agent() {
    local pid rc=0
    pid=$(cat "$T/$1.pid" 2>/dev/null) || return 0
    kill -"${2:-TERM}" "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || rc=$?
    rm -f "$T/$1.pid"
    if [ "${2:-TERM}" = TERM ] && [ "$rc" != 0 ]; then
        tail -n 40 "$T/$1.log" >&2
        fail "agent $1 exited with status $rc after SIGTERM"
    fi
}

# api NAME METHOD PATH [BODY]: the response body on stdout; the HTTP status
# in $T/status. Extra curl options in CURL_EXTRA (an array).
api() {
    local name=$1 method=$2 path=$3 body=${4-}
    local args=(-s -o "$T/resp" -w '%{http_code}' -X "$method" --unix-socket "$T/$name.sock")
    [ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
    curl "${args[@]}" "${CURL_EXTRA[@]}" "http://localhost$path" >"$T/status" || echo 000 >"$T/status"
    cat "$T/resp"
}
status() { cat "$T/status"; }

# offline_activate NAME LICENSE [sign-activation options]: the whole offline
# round trip; leaves the license certificate in $T/NAME.lic
offline_request() {
    api "$1" POST /v1/management/license/offlineactivation "{\"license\": \"$2\"}" |
        jq -r .activation_certificate >"$T/$1.act"
    [ "$(status)" = 200 ] || fail "offline activation request: $(status) $(cat "$T/resp")"
}
vendor_sign() { # NAME [options]
    local name=$1
    shift
    "$VENDOR" sign-activation --key "$T/vendor.key" --in "$T/$name.act" "$@" >"$T/$name.lic" ||
        fail "sign-activation failed"
}
apply_license() { # NAME LICENSE [CERTFILE]
    api "$1" PUT /v1/management/license/offlineactivation \
        "{\"license\": \"$2\", \"certificate\": \"$(cat "${3:-$T/$1.lic}")\"}"
}

# licensed_agent NAME [sign-activation options]: a fresh swtpm, an agent on
# it and a license applied through the offline round trip (license L-1,
# product p, customer 1); extra options go to sign-activation. The TCTI is
# left in $T/NAME.tcti.
licensed_agent() {
    local name=$1
    shift
    vendor_keys
    new_tpm "$name.tpm" >"$T/$name.tcti"
    start_agent "$name" "$(cat "$T/$name.tcti")"
    offline_request "$name" L-1
    vendor_sign "$name" --product p --customer-id 1 "$@"
    apply_license "$name" L-1 >/dev/null
    [ "$(status)" = 200 ] || fail "applying the license: $(status) $(cat "$T/resp")"
}

# tpm_proxy NAME TPMDIR: tests/lib/tpmproxy.py between the agent and the
# swtpm in TPMDIR; prints the TCTI for the agent. Its mode is $T/NAME.mode
# (tpm_proxy_mode), its log $T/NAME.log.
TPMPROXY=$TPMLIC_SRCDIR/tests/lib/tpmproxy.py
tpm_proxy() {
    local n=$1 dir=$2 i
    echo pass >"$T/$n.mode"
    python3 "$TPMPROXY" --listen "$T/$n.sock" --upstream "$dir/tpm.sock" \
        --mode-file "$T/$n.mode" --log "$T/$n.log" >"$T/$n.out" 2>&1 &
    echo $! >"$T/$n.pid"
    for i in $(seq 1 100); do
        grep -q ready "$T/$n.out" 2>/dev/null && break
        sleep 0.05
    done
    grep -q ready "$T/$n.out" || fail "the TPM proxy did not start: $(cat "$T/$n.out")"
    echo "swtpm:path=$T/$n.sock"
}
tpm_proxy_mode() { # NAME MODE [ARGS...]
    local n=$1
    shift
    echo "$*" >"$T/$n.mode.new" && mv "$T/$n.mode.new" "$T/$n.mode"
}

# wait_until SECS COMMAND...: polls until the command succeeds
wait_until() {
    local limit=$1 i
    shift
    for i in $(seq 1 $((limit * 10))); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}

# nv_auth NAME: the auth value of agent NAME's NV indices, as tpm2-tools
# takes it (root can read it: it is in the state directory)
nv_auth() {
    echo "hex:$(od -An -tx1 -v "$T/$1.state/nv.auth" | tr -d ' \n')"
}

# agent_cert NAME TCTI: the license certificate agent NAME keeps in the TPM,
# read as root can: of its two slots (0x01a0c000, 0x01a0c004) the intact
# record with the highest sequence number (docs/agent.md, "What the TPM
# holds"); prints nothing when that record says "no license", fails when
# neither slot holds an intact record
agent_cert() {
    local i
    rm -f "$T/nv.lic0" "$T/nv.lic1"
    for i in 0 1; do
        TPM2TOOLS_TCTI=$2 tpm2_nvread "$([ $i = 0 ] && echo 0x01a0c000 || echo 0x01a0c004)" \
            -P "$(nv_auth "$1")" -o "$T/nv.lic$i" >/dev/null 2>&1 || rm -f "$T/nv.lic$i"
    done
    python3 "$TPMLIC_SRCDIR/tests/lib/nvlicense.py" "$T/nv.lic0" "$T/nv.lic1"
}
