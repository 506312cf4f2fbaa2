#!/bin/bash
# tpmlicd's socket API under bad input and faults: who may call what (real
# second uid), malformed requests, wrong methods and paths, oversized
# bodies, a TPM missing at start or lost while running.
. "$(dirname "$0")/../lib/testlib.sh"
. "$(dirname "$0")/../lib/agentlib.sh"

# as_user GROUPS CURL-ARGS...: curl as uid 65534 with the given
# supplementary groups ("" for none); prints "STATUS BODY"
as_user() {
    local groups=$1
    shift
    local g=(--clear-groups)
    [ -n "$groups" ] && g=(--groups "$groups")
    setpriv --reuid 65534 --regid 65534 "${g[@]}" \
        curl -s -o - -w ' %{http_code}' --unix-socket "$T/a.sock" "$@"
}

test_requires_root() {
    [ "$(id -u)" = 0 ] || fail "this test switches users and must run as root (CI does)"
}

test_permissions_by_group() {
    vendor_keys
    start_agent a "$(new_tpm a.tpm)"
    chmod 755 "$T"
    # no group: 403 on service and management endpoints
    out=$(as_user "" http://localhost/v1/status)
    assert_eq 403 "${out##* }" "status without group"
    assert_contains "$out" "permission denied"
    out=$(as_user "" -X POST http://localhost/v1/check)
    assert_eq 403 "${out##* }" "check without group"
    out=$(as_user "" http://localhost/v1/management/license)
    assert_eq 403 "${out##* }" "management without group"
    # the service group: service yes, management no
    out=$(as_user 4242 http://localhost/v1/status)
    assert_eq 200 "${out##* }" "status as service group"
    out=$(as_user 4242 http://localhost/v1/management/license)
    assert_eq 403 "${out##* }" "management as service group"
    assert_contains "$out" "4343"
    out=$(as_user 4242 -X POST -d '{"license":"L-1"}' http://localhost/v1/management/license/offlineactivation)
    assert_eq 403 "${out##* }" "offline activation as service group"
    # the admin group: management yes
    out=$(as_user 4343 http://localhost/v1/management/license)
    assert_eq 200 "${out##* }" "management as admin group"
    # root: everything
    api a GET /v1/management/license >/dev/null
    assert_eq 200 "$(status)"
}

# The settings of the fair limits reach the socket: one uid past its
# connections is answered 503 at once, root is not; a request trickled in
# is dropped after the header timeout; /metrics counts both.
test_fair_limits() {
    vendor_keys
    start_agent a "$(new_tpm a.tpm)" --max-connections-per-uid 2 --header-timeout 1
    chmod 755 "$T"
    # the system python3: a per-user one (pyenv) may not be reachable by uid 65534
    out=$(setpriv --reuid 65534 --regid 65534 --groups 4242 /usr/bin/python3 - "$T/a.sock" <<'EOF'
import socket, sys
held, codes = [], []
for _ in range(3):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    s.settimeout(5)
    try:
        s.sendall(b"GET /v1/status HTTP/1.1\r\nHost: localhost\r\n\r\n")
    except OSError:
        pass  # refused when it opened: the answer is there all the same
    d = b""
    try:
        while b"\r\n\r\n" not in d:
            c = s.recv(4096)
            if not c:
                break
            d += c
    except OSError:
        pass
    codes.append(d.split(b" ")[1].decode() if d else "none")
    held.append(s)
print(" ".join(codes))
EOF
)
    assert_eq "200 200 503" "$out" "a third connection of one uid"
    api a GET /v1/status >/dev/null
    assert_eq 200 "$(status)" "root"
    t=$(python3 - "$T/a.sock" <<'EOF'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"GET /v1/status HTTP/1.1\r\nX-Slow: ")
s.settimeout(0.1)
t0 = time.time()
while time.time() - t0 < 5:
    try:
        s.send(b"a")
        if s.recv(1) == b"":
            break
    except socket.timeout:
        continue
    except OSError:
        break
print("%.0f" % (time.time() - t0))
EOF
)
    case $t in 1 | 2) ;; *) fail "a trickled request was dropped after $t s, not after the 1 s header timeout" ;; esac
    m=$(api a GET /metrics)
    assert_contains "$m" "tpmlic_http_connections_refused_total 1"
    assert_contains "$m" "tpmlic_http_connections_too_slow_total 1"
}

test_default_socket_mode_keeps_others_out() {
    vendor_keys
    tcti=$(new_tpm a.tpm)
    rm -f "$T/a.sock"
    "$TPMLICD" --config /dev/null --tcti "$tcti" --socket "$T/a.sock" --state-dir "$T/a.state" \
        --vendor-key "$T/vendor.pub" --service-group 4242 >"$T/a.log" 2>&1 &
    echo $! >"$T/a.pid"
    for _ in $(seq 1 100); do [ -S "$T/a.sock" ] && break; sleep 0.05; done
    chmod 755 "$T"
    assert_eq 660 "$(stat -c %a "$T/a.sock")" "socket mode"
    assert_eq 4242 "$(stat -c %g "$T/a.sock")" "socket group"
    out=$(as_user "" http://localhost/v1/status 2>&1) && fail "connected without the group: $out"
    out=$(as_user 4242 http://localhost/v1/status)
    assert_eq 200 "${out##* }" "status as service group"
}

test_bad_requests() {
    vendor_keys
    start_agent a "$(new_tpm a.tpm)"
    api a GET /v1/nope >/dev/null
    assert_eq 404 "$(status)" "unknown path"
    out=$(api a DELETE /v1/status)
    assert_eq 405 "$(status)" "wrong method"
    assert_contains "$out" "GET"
    out=$(api a POST /v1/check '{"feature": ')
    assert_eq 400 "$(status)" "malformed JSON"
    assert_contains "$out" "malformed JSON"
    out=$(api a POST /v1/check '{"feature": "a", "feature": "b"}')
    assert_eq 400 "$(status)" "duplicate key"
    out=$(api a POST /v1/check '[1, 2]')
    assert_eq 400 "$(status)" "not an object"
    out=$(api a PUT /v1/management/license/offlineactivation '{"license": 1, "certificate": []}')
    assert_eq 400 "$(status)" "wrong types"
    head -c 70000 /dev/zero | tr '\0' ' ' >"$T/big"
    code=$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$T/a.sock" \
        -H 'Content-Type: application/json' --data-binary @"$T/big" http://localhost/v1/check)
    assert_eq 413 "$code" "oversized body"
    # a slow client that sends half a request does not hold up others
    (printf 'POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"fea'; sleep 5) |
        timeout 6 socat - UNIX-CONNECT:"$T/a.sock" >/dev/null 2>&1 &
    sleep 0.3
    api a GET /v1/status >/dev/null
    assert_eq 200 "$(status)" "status while a slow client waits"
    # many at once
    pids=()
    for i in $(seq 1 200); do
        curl -s -o /dev/null -w '%{http_code}\n' --unix-socket "$T/a.sock" http://localhost/v1/status \
            >>"$T/many" 2>&1 &
        pids+=($!)
    done
    wait "${pids[@]}"
    assert_eq 200 "$(grep -c '^200$' "$T/many")" "answers to 200 clients at once"
    kill -0 "$(cat "$T/a.pid")" || fail "agent died"
}

test_no_tpm_at_start() {
    vendor_keys
    out=$("$TPMLICD" --config /dev/null --tcti "swtpm:path=$T/none.sock" --socket "$T/a.sock" \
        --state-dir "$T/a.state" --vendor-key "$T/vendor.pub" 2>&1) && fail "started without a TPM"
    assert_contains "$out" "no usable TPM: no TPM at 'swtpm:path=$T/none.sock'"
    [ -e "$T/a.sock" ] && fail "socket created although start-up failed"
    # development mode: starts, says so, licenses nothing
    start_agent a "swtpm:path=$T/none.sock" --allow-no-tpm
    out=$(api a GET /v1/status)
    assert_eq false "$(jq .tpm.present <<<"$out")"
    assert_contains "$(jq -r .reason <<<"$out")" "no TPM: a license cannot be kept without one"
    out=$(api a POST /v1/management/license/offlineactivation '{"license": "L-1"}')
    assert_eq 503 "$(status)"
    assert_contains "$out" "no TPM"
}

test_missing_vendor_key_and_bad_config() {
    tcti=$(new_tpm a.tpm)
    out=$("$TPMLICD" --config /dev/null --tcti "$tcti" --socket "$T/a.sock" --state-dir "$T/s" \
        --vendor-key "$T/nope.pub" 2>&1) && fail "started without a vendor key"
    assert_contains "$out" "cannot read the vendor public key $T/nope.pub"
    echo "not a key" >"$T/bad.pub"
    out=$("$TPMLICD" --config /dev/null --tcti "$tcti" --socket "$T/a.sock" --state-dir "$T/s" \
        --vendor-key "$T/bad.pub" 2>&1) && fail "started with a bad vendor key"
    assert_contains "$out" "is not an Ed25519 public key"
    out=$("$TPMLICD" --config /dev/null --bogus 2>&1) && fail "accepted --bogus"
    assert_contains "$out" "unknown option '--bogus'"
}

test_tpm_lost_while_running() {
    vendor_keys
    tcti=$(new_tpm a.tpm)
    start_agent a "$tcti"
    offline_request a L-1001
    vendor_sign a --product p --customer-id 1 --type perpetual --offline-allowed
    apply_license a L-1001 >/dev/null
    assert_eq 200 "$(status)"
    "$SWTPM_CTL" poweroff "$T/a.tpm"
    for _ in $(seq 1 60); do
        out=$(api a GET /v1/status)
        [ "$(jq .tpm.ok <<<"$out")" = false ] && break
        sleep 0.1
    done
    assert_eq false "$(jq .tpm.ok <<<"$out")" "TPM reported lost"
    assert_contains "$(jq -r .tpm.error <<<"$out")" "TPM lost"
    api a POST /v1/check >/dev/null
    assert_eq 200 "$(status)" "check answered from memory without the TPM"
    assert_contains "$(api a GET /metrics)" "tpmlic_tpm_up 0"
    # the TPM comes back: the agent reconnects
    "$SWTPM_CTL" start "$T/a.tpm" >/dev/null
    for _ in $(seq 1 60); do
        out=$(api a GET /v1/status)
        [ "$(jq .tpm.ok <<<"$out")" = true ] && break
        sleep 0.1
    done
    assert_eq true "$(jq .tpm.ok <<<"$out")" "TPM back"
}

test_notifies_systemd_and_drops_privileges() {
    vendor_keys
    tcti=$(new_tpm a.tpm)
    socat -u UNIX-RECV:"$T/notify" CREATE:"$T/notified" &
    echo $! >"$T/socat.pid"
    for _ in $(seq 1 50); do [ -S "$T/notify" ] && break; sleep 0.02; done
    chmod 777 "$T/notify" # as systemd's: the agent notifies after dropping root
    chmod 755 "$T" "$T/a.tpm"
    # swtpm's TCTI connects anew for every command: the user must reach it
    # (a TPM device stays open instead)
    chmod 777 "$T/a.tpm/tpm.sock" "$T/a.tpm/tpm.sock.ctrl"
    NOTIFY_SOCKET=$T/notify start_agent a "$tcti" --user nobody
    for _ in $(seq 1 50); do grep -q READY=1 "$T/notified" 2>/dev/null && break; sleep 0.05; done
    assert_contains "$(cat "$T/notified")" "READY=1"
    uid=$(awk '/^Uid:/ {print $2 $3 $4 $5}' "/proc/$(cat "$T/a.pid")/status")
    nobody=$(id -u nobody)
    assert_eq "$nobody$nobody$nobody$nobody" "$uid" "real, effective, saved and fs uid"
    assert_eq "$nobody" "$(stat -c %u "$T/a.state")" "state directory owner"
    # still serves, and still writes the TPM after dropping root
    offline_request a L-1001
    vendor_sign a --product p --customer-id 1 --type perpetual --offline-allowed
    apply_license a L-1001 >/dev/null
    assert_eq 200 "$(status)" "PUT as user nobody: $(cat "$T/resp")"
    out=$(api a POST /v1/management/license/network '{"http_configuration": {"ip": "", "port": 1}}')
    assert_eq 200 "$(status)" "writing the state directory as nobody: $out"
    stop_agent a
}

run_tests
