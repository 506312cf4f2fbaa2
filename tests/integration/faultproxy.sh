#!/bin/bash
# The fault-injecting proxy the online tests rely on does what each mode says
# (curl against a real tpmlic-server behind it).
. "$(dirname "$0")/../lib/testlib.sh"
. "$(dirname "$0")/../lib/agentlib.sh"
. "$(dirname "$0")/../lib/serverlib.sh"

post() { # URL: POST a malformed body; prints "STATUS BODY", curl's exit in $T/rc
    local rc=0
    curl -s -m 3 --cacert "$T/srv-ca.pem" -o "$T/body" -w '%{http_code}' \
        -H 'Content-Type: application/json' -d '{"activation_certificate": "x"}' \
        "$1/v1/activate" >"$T/code" 2>/dev/null || rc=$?
    echo "$rc" >"$T/rc"
    echo "$(cat "$T/code") $(cat "$T/body")"
}

test_each_mode() {
    start_server srv
    start_faultproxy fp srv
    url=$(cat "$T/fp.url")
    direct=$(post "$(cat "$T/srv.url")")
    assert_eq "$direct" "$(post "$url")" "pass"
    faultproxy_mode fp 500
    assert_contains "$(post "$url")" "500 "
    faultproxy_mode fp garbage
    assert_contains "$(post "$url")" "200 <html>"
    faultproxy_mode fp unsigned
    assert_contains "$(post "$url")" '200 {"answer"'
    faultproxy_mode fp replay
    assert_eq "$direct" "$(post "$url")" "replay of the recorded answer"
    faultproxy_mode fp hang
    post "$url" >/dev/null
    assert_eq 28 "$(cat "$T/rc")" "hang: curl times out"
    faultproxy_mode fp drop
    post "$url" >/dev/null
    assert_eq 52 "$(cat "$T/rc")" "drop: empty reply"
    faultproxy_mode fp refuse
    post "$url" >/dev/null
    [ "$(cat "$T/rc")" = 35 ] || [ "$(cat "$T/rc")" = 56 ] || fail "refuse: curl exit $(cat "$T/rc")"
    assert_eq 8 "$(wc -l <"$T/fp.requests")" "requests logged"
    stop_server srv
}

test_badsig_changes_only_the_signature() {
    start_server srv
    server_license srv L-1 --type perpetual
    start_faultproxy fp srv
    faultproxy_mode fp badsig
    # an unknown license code: a signed refusal
    out=$(curl -s --cacert "$T/srv-ca.pem" -H 'Content-Type: application/json' \
        -d '{"v":1,"license":"NOPE","activation":"x","computer_id":"00000000-0000-8000-8000-000000000000","nonce":"00000000000000000000000000000000","epoch":"00000000000000000000000000000000","next_epoch":"00000000000000000000000000000001","counter":1,"consumed_secs":0}' \
        "$(cat "$T/fp.url")/v1/validate")
    good=$(curl -s --cacert "$T/srv-ca.pem" -H 'Content-Type: application/json' \
        -d '{"v":1,"license":"NOPE","activation":"x","computer_id":"00000000-0000-8000-8000-000000000000","nonce":"00000000000000000000000000000000","epoch":"00000000000000000000000000000000","next_epoch":"00000000000000000000000000000001","counter":1,"consumed_secs":0}' \
        "$(cat "$T/srv.url")/v1/validate")
    a=$(jq -r .answer <<<"$out")
    g=$(jq -r .answer <<<"$good")
    [ -n "$a" ] && [ "$a" != null ] || fail "no answer through the proxy: $out"
    assert_eq "${g%%.*}" "${a%%.*}" "header unchanged"
    [ "${g##*.}" != "${a##*.}" ] || fail "the signature was not changed"
    # the agent's side of a changed signature is in agent_online.sh
    stop_server srv
}

run_tests
