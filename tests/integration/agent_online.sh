#!/bin/bash
# Online licensing end to end: tpmlicd on a real swtpm against a real
# tpmlic-server over TLS on loopback (tests/lib/serverlib.sh), through a real
# HTTP proxy (tinyproxy) and through a fault-injecting TLS proxy
# (tests/lib/faultproxy.py). Grace periods and back-off run on the test
# build of the agent whose wall clock the test moves (tests/lib/testclock.c);
# the TPM's clock is never moved.
. "$(dirname "$0")/../lib/testlib.sh"
. "$(dirname "$0")/../lib/agentlib.sh"
. "$(dirname "$0")/../lib/serverlib.sh"
. "$(dirname "$0")/../lib/onlinelib.sh"

# --- activation, validation, refill, removal --------------------------------------

test_activate_use_and_remove_returns_the_unused_seconds() {
    setup_online a --type consumption --expiry "$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)" \
        --features standard --secs-allocated 100000 --cache-secs 3600 --tick-secs 60
    online_agent a "$tcti" "$url"
    out=$(api a GET /v1/management/license)
    assert_eq false "$(jq .licensed <<<"$out")"

    out=$(activate a)
    assert_eq 200 "$(status)" "activate: $out"
    assert_eq true "$(jq .licensed <<<"$out")"
    assert_eq true "$(jq .connected <<<"$out")"
    assert_eq online "$(jq -r .activation_type <<<"$out")"
    assert_eq 3600 "$(jq .transcription_secs_allowed <<<"$out")" "first grant = cache_secs"
    assert_eq 100000 "$(jq .transcription_secs_allocated <<<"$out")"
    out=$(api a POST /v1/check '{"feature": "standard"}')
    assert_eq 200 "$(status)" "check: $out"
    lic=$(api a GET /licensing)
    assert_contains "$(jq -r .last_check <<<"$lic")" "$(date -u +%Y-%m-%d)" "last_check"
    next=$(date -u -d "$(jq -r .next_check <<<"$lic")" +%s)
    now=$(date +%s)
    [ $((next - now)) -gt 86000 ] && [ $((next - now)) -le 86400 ] ||
        fail "next_check is not 24 h away: $(jq -r .next_check <<<"$lic")"
    assert_eq null "$(jq .grace_period_end <<<"$lic")"
    m=$(api a GET /metrics)
    mnext=$(awk '$1 == "tpmlic_validation_next_timestamp_seconds" {print $2}' <<<"$m")
    near "$next" "$mnext" || fail "metrics: next validation $mnext, /licensing $next"
    assert_eq "$(date -u -d "$(jq -r .last_check <<<"$lic")" +%s)" \
        "$(awk '$1 == "tpmlic_validation_last_success_timestamp_seconds" {print $2}' <<<"$m")" \
        "metrics: last validation"
    assert_eq "$(date -u -d "$(jq -r .expiry <<<"$lic")" +%s)" \
        "$(awk '$1 == "tpmlic_license_expiry_timestamp_seconds" {print $2}' <<<"$m")" \
        "metrics: expiry"
    assert_contains "$m" "tpmlic_grace_period_end_timestamp_seconds 0"

    # use 100 s of a 150 s lease (tick 60: the counter covers 180 s)
    lease=$(api a POST /v1/usage/reserve '{"seconds": 150}' | jq -r .lease)
    api a POST /v1/usage/commit "{\"lease\": \"$lease\", \"used\": 100}" >/dev/null
    assert_eq 200 "$(status)"

    # a second activation is refused while one is applied
    activate a >/dev/null
    assert_eq 409 "$(status)"

    out=$(api a DELETE /v1/management/license)
    assert_eq 200 "$(status)" "deactivate: $out"
    assert_eq 3500 "$(jq .transcription_secs_returned <<<"$out")" "3600 granted - 100 used"
    out=$(api a GET /v1/status)
    assert_eq false "$(jq .licensed <<<"$out")"
    api a POST /v1/check >/dev/null
    assert_eq 403 "$(status)"
    # the server's pool: only the 100 s used are gone
    show=$(activation_json)
    assert_eq 99900 "$(jq .pool.free <<<"$show")" "pool free after removal: $show"

    # the license can be activated again, and survives a restart
    out=$(activate a)
    assert_eq 200 "$(status)" "activate again: $out"
    stop_agent a
    online_agent a "$tcti" "$url"
    out=$(api a GET /v1/status)
    assert_eq true "$(jq .valid <<<"$out")" "after restart: $out"
    wait_until 10 validations_are a ok 1 || fail "no validation at start"
    stop_agent a
}

test_refill_in_the_background_and_the_pool_adds_up() {
    setup_online a --type consumption --expiry "$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)" \
        --secs-allocated 2000 --cache-secs 600 --tick-secs 60
    online_agent a "$tcti" "$url"
    activate a >/dev/null
    assert_eq 200 "$(status)"
    assert_eq 600 "$(api a GET /v1/status | jq .secs_remaining)"
    used=0
    # use 500 s: under a quarter of the 600 s step is left, so a refill follows
    lease=$(api a POST /v1/usage/reserve '{"seconds": 500}' | jq -r .lease)
    api a POST /v1/usage/commit "{\"lease\": \"$lease\", \"used\": 500}" >/dev/null
    used=500
    wait_until 10 validations_are a ok 1 || fail "no refill validation: $(tail -5 "$T/a.log")"
    # granted is now what was charged (500 s) + the 600 s step
    assert_eq 600 "$(api a GET /v1/status | jq .secs_remaining)" "seconds after refill"
    # drain the pool: 2000 s in all can ever be handed out
    refusals=0
    for i in $(seq 1 40); do
        out=$(api a POST /v1/usage/reserve '{"seconds": 400}')
        if [ "$(status)" != 200 ]; then
            refusals=$((refusals + 1))
            [ $refusals -ge 4 ] && break
            sleep 0.5 # a refill may be on its way
            continue
        fi
        refusals=0
        lease=$(jq -r .lease <<<"$out")
        got=$(jq .seconds <<<"$out")
        api a POST /v1/usage/commit "{\"lease\": \"$lease\", \"used\": $got}" >/dev/null
        used=$((used + got))
    done
    [ "$used" -le 2000 ] || fail "$used seconds used from a pool of 2000"
    [ "$used" -ge 1800 ] || fail "only $used seconds of 2000 could be used"
    out=$(api a DELETE /v1/management/license)
    assert_eq 200 "$(status)" "deactivate: $out"
    show=$(activation_json)
    # what was never used goes back, exactly
    assert_eq $((2000 - used)) "$(jq .pool.free <<<"$show")" "pool free = allocated - used"
    stop_agent a
}

# A validation that counted an open lease as consumed, then a commit that
# returns most of it: what the agent reports next (here the removal) is
# never below the earlier report, which the server would refuse
# (consumption_went_back) and flag as a copy's.
test_consumption_reported_never_goes_back_when_a_lease_returns_seconds() {
    setup_online a --type consumption --expiry "$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)" \
        --secs-allocated 100000 --cache-secs 600 --tick-secs 60
    online_agent a "$tcti" "$url"
    activate a >/dev/null
    assert_eq 200 "$(status)" "activation: $(cat "$T/resp")"
    # 100 s left of 600: a refill validation reports the open lease as consumed
    lease=$(api a POST /v1/usage/reserve '{"seconds": 500}' | jq -r .lease)
    wait_until 10 validations_are a ok 1 || fail "no refill validation: $(tail -3 "$T/a.log")"
    api a POST /v1/usage/commit "{\"lease\": \"$lease\", \"used\": 10}" >/dev/null
    assert_eq 200 "$(status)"
    out=$(api a DELETE /v1/management/license)
    assert_eq 200 "$(status)" "removal after the lease returned 490 s: $out"
    assert_eq 0 "$(activation_json | jq '[.activations[].flags[]] | length')" "flags on the server"
    stop_agent a
}

# Services that keep asking for seconds while the server fails do not turn
# into one validation (and one TPM write of the grace record) per request:
# after the failed refill the next attempt waits for its back-off.
test_refill_after_a_failure_waits_for_the_backoff() {
    setup_online a --type consumption --expiry "$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)" \
        --secs-allocated 100000 --cache-secs 600 --tick-secs 60
    start_faultproxy fp srv
    online_agent a "$tcti" "$(cat "$T/fp.url")" --server-timeout 2
    activate a >/dev/null
    assert_eq 200 "$(status)" "activation: $(cat "$T/resp")"
    faultproxy_mode fp 500
    lease=$(api a POST /v1/usage/reserve '{"seconds": 500}' | jq -r .lease)
    api a POST /v1/usage/commit "{\"lease\": \"$lease\", \"used\": 500}" >/dev/null
    wait_until 10 validations_are a failed 1 || fail "no refill attempt: $(tail -3 "$T/a.log")"
    for i in $(seq 1 10); do
        lease=$(api a POST /v1/usage/reserve '{"seconds": 5}' | jq -r .lease)
        assert_eq 200 "$(status)" "reservation $i during the grace period"
        api a POST /v1/usage/commit "{\"lease\": \"$lease\", \"used\": 5}" >/dev/null
    done
    sleep 1
    assert_eq 1 "$(validations a failed)" "failed validations after 10 more reservations"
    assert_eq 1 "$(grep -c validate "$T/fp.requests")" "validations the server was sent"
    stop_agent a
}

# The TPM lost in the middle of an activation's writes (tests/lib/tpmproxy.py
# drops the third NV write: the certificate takes two, the state one): the
# agent comes back unlicensed or licensed,
# never with a certificate beside a state without its epoch, which the
# server would refuse as a copy's (stale_epoch) and flag.
test_tpm_lost_between_the_writes_of_an_activation() {
    setup_online a --type subscription --expiry "$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)"
    ptcti=$(tpm_proxy tp "$T/a.tpm")
    online_agent a "$ptcti" "$url"
    tpm_proxy_mode tp drop-nvwrite 2
    out=$(activate a)
    [ "$(status)" != 200 ] || fail "activation answered 200 with the TPM lost: $out"
    stop_agent a KILL
    tpm_proxy_mode tp pass
    online_agent a "$ptcti" "$url"
    if [ "$(api a GET /v1/status | jq .licensed)" = true ]; then
        wait_until 10 bash -c "[ \"\$(curl -s --unix-socket $T/a.sock http://localhost/metrics | grep -c '^tpmlic_validations_total.* [1-9]')\" -ge 1 ]" ||
            fail "no validation at start"
    fi
    assert_eq 0 "$(validations a refused)" "refused validations: $(tail -3 "$T/a.log")"
    assert_eq 0 "$(activation_json | jq '[.activations[].flags[]] | length')" "flags on the server"
    api a DELETE /v1/management/license >/dev/null
    out=$(activate a)
    assert_eq 200 "$(status)" "activation after the TPM came back: $out"
    stop_agent a
}

# The TPM lost when the server has confirmed a removal: the operator is told
# that the TPM still holds the license, and the next validation erases it.
test_tpm_lost_when_a_removal_is_confirmed() {
    setup_online a --type consumption --expiry "$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)" \
        --secs-allocated 10000 --cache-secs 1000 --tick-secs 60
    ptcti=$(tpm_proxy tp "$T/a.tpm")
    online_agent a "$ptcti" "$url"
    activate a >/dev/null
    assert_eq 200 "$(status)" "activation: $(cat "$T/resp")"
    tpm_proxy_mode tp drop-nvwrite 0
    out=$(api a DELETE /v1/management/license)
    assert_eq 503 "$(status)" "removal with the TPM lost: $out"
    assert_contains "$(jq -r .error <<<"$out")" "removed on the license server"
    assert_eq false "$(api a GET /v1/status | jq .licensed)" "licensed after the removal"
    assert_eq 0 "$(activation_json | jq .active_activations)" "active on the server"
    stop_agent a KILL
    tpm_proxy_mode tp pass
    online_agent a "$ptcti" "$url"
    wait_until 10 bash -c "[ \"\$(curl -s --unix-socket $T/a.sock http://localhost/v1/status | jq .licensed)\" = false ]" ||
        fail "the removed license serves again after a restart: $(tail -3 "$T/a.log")"
    stop_agent a
}

test_max_activations_and_invalid_codes() {
    setup_online a --type subscription --expiry "$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)" \
        --max-activations 1
    online_agent a "$tcti" "$url"
    tcti_b=$(new_tpm b.tpm)
    online_agent b "$tcti_b" "$url"
    out=$(activate a NOPE-1)
    assert_eq 400 "$(status)" "unknown code: $out"
    assert_contains "$(jq -r .error <<<"$out")" "Invalid license code"
    out=$(activate a 'bad code!')
    assert_eq 400 "$(status)"
    activate a >/dev/null
    assert_eq 200 "$(status)"
    out=$(activate b)
    assert_eq 403 "$(status)" "second appliance: $out"
    assert_contains "$(jq -r .error <<<"$out")" "activation"
    assert_eq false "$(api b GET /v1/status | jq .licensed)"
    # once a frees it, b may activate
    api a DELETE /v1/management/license >/dev/null
    assert_eq 200 "$(status)"
    activate b >/dev/null
    assert_eq 200 "$(status)" "after a's removal: $(cat "$T/resp")"
    stop_agent a
    stop_agent b
}

test_offline_rules_for_online_licenses() {
    setup_online a --type subscription --expiry "$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)"
    online_agent a "$tcti" "$url"
    activate a >/dev/null
    out=$(api a POST /v1/management/license/offlinemode '{"offline": true}')
    assert_eq 403 "$(status)"
    assert_contains "$(jq -r .error <<<"$out")" "Offline mode not enabled for this license"
    stop_agent a
    # an agent without a server cannot activate or remove online
    tcti_b=$(new_tpm b.tpm)
    start_agent b "$tcti_b"
    out=$(activate b)
    assert_eq 503 "$(status)"
    assert_contains "$(jq -r .error <<<"$out")" "Cannot activate when offline"
    stop_agent b
}

test_offline_mode_stops_contact_and_refuses_removal() {
    setup_online a --type subscription --expiry "$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)" \
        --offline-allowed
    online_agent a "$tcti" "$url"
    activate a >/dev/null
    out=$(api a POST /v1/management/license/offlinemode '{"offline": true}')
    assert_eq 200 "$(status)" "offline mode: $out"
    out=$(api a DELETE /v1/management/license)
    assert_eq 409 "$(status)"
    assert_contains "$(jq -r .error <<<"$out")" "Cannot remove license in offline mode"
    out=$(api a GET /licensing)
    assert_eq null "$(jq .next_check <<<"$out")" "no validation in offline mode"
    # in offline mode the server being gone changes nothing
    stop_server srv
    stop_agent a
    online_agent a "$tcti" "$url"
    sleep 1
    assert_eq true "$(api a GET /v1/status | jq .valid)"
    assert_eq 0 "$(validations a failed)"
    stop_agent a
}

test_removal_with_the_server_down_changes_nothing() {
    setup_online a --type consumption --expiry "$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)" \
        --secs-allocated 10000 --cache-secs 1000
    online_agent a "$tcti" "$url"
    activate a >/dev/null
    stop_server srv
    out=$(api a DELETE /v1/management/license)
    assert_eq 503 "$(status)"
    assert_contains "$(jq -r .error <<<"$out")" "The license is unchanged"
    assert_eq true "$(api a GET /v1/status | jq .valid)"
    out=$(api a POST /v1/usage/reserve '{"seconds": 10}')
    assert_eq 200 "$(status)" "seconds still handed out: $out"
    # the server comes back: the removal goes through
    start_server srv
    stop_agent a
    online_agent a "$tcti" "$(cat "$T/srv.url")"
    out=$(api a DELETE /v1/management/license)
    assert_eq 200 "$(status)" "removal: $out"
    # 60 s are covered by the counter, the 10 s lease is charged in full
    assert_eq 940 "$(jq .transcription_secs_returned <<<"$out")"
    stop_agent a
}

test_tpmlicctl_activates_and_removes_online() {
    setup_online a --type consumption --expiry "$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)" \
        --secs-allocated 10000 --cache-secs 3600 --features standard
    online_agent a "$tcti" "$url"
    ctl=("$B/tpmlicctl" --socket "$T/a.sock")
    out=$("${ctl[@]}" activate NOPE-9 2>&1) && fail "an unknown code was activated"
    assert_contains "$out" "Invalid license code"
    out=$("${ctl[@]}" activate L-1 --username ops --email ops@example.com --company Example)
    assert_contains "$out" "license L-1 activated"
    out=$("${ctl[@]}" --json status)
    assert_eq true "$(jq .valid <<<"$out")"
    rc=0
    "${ctl[@]}" activate L-1 >/dev/null 2>"$T/err" || rc=$?
    assert_eq 1 "$rc" "exit status of a second activation"
    assert_contains "$(cat "$T/err")" "already applied"
    out=$("${ctl[@]}" deactivate)
    assert_contains "$out" "license removed"
    assert_contains "$out" "1 h"
    "${ctl[@]}" --json check >/dev/null && fail "allowed after removal"
    stop_agent a
}

# --- the proxy -------------------------------------------------------------------

# start_tinyproxy NAME USER PASSWORD: a proxy with basic auth on loopback
start_tinyproxy() {
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat >"$T/$1.conf" <<EOF
Port $port
Listen 127.0.0.1
Timeout 30
MaxClients 20
Allow 127.0.0.1
BasicAuth $2 $3
LogLevel Connect
EOF
    tinyproxy -d -c "$T/$1.conf" >"$T/$1.log" 2>&1 &
    echo $! >"$T/$1.pid"
    echo "$port" >"$T/$1.port"
    wait_until 5 bash -c "echo >/dev/tcp/127.0.0.1/$port" 2>/dev/null || fail "tinyproxy did not start"
}

test_through_a_proxy_with_basic_auth() {
    command -v tinyproxy >/dev/null || fail "tinyproxy is not installed (package tinyproxy-bin)"
    setup_online a --type subscription --expiry "$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)"
    start_tinyproxy px user s3cret
    port=$(cat "$T/px.port")
    # a proxy in the environment is never used for license traffic
    https_proxy=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 ALL_PROXY=http://127.0.0.1:9 \
        online_agent a "$tcti" "$url"
    out=$(api a POST /v1/management/license/network \
        "{\"http_configuration\": {\"ip\": \"127.0.0.1\", \"port\": $port, \"user\": \"user\", \"password\": \"wrong\"}}")
    assert_eq 200 "$(status)" "network: $out"
    out=$(activate a)
    assert_eq 503 "$(status)" "activation through a refusing proxy: $out"
    assert_contains "$(jq -r .error <<<"$out")" "proxy"
    assert_contains "$(jq -r .error <<<"$out")" "refused the connection (HTTP 40"
    api a POST /v1/management/license/network \
        "{\"http_configuration\": {\"ip\": \"127.0.0.1\", \"port\": $port, \"user\": \"user\", \"password\": \"s3cret\"}}" >/dev/null
    out=$(activate a)
    assert_eq 200 "$(status)" "activation through the proxy: $out"
    grep -q "CONNECT" "$T/px.log" || fail "the proxy saw no CONNECT: $(cat "$T/px.log")"
    if grep -q s3cret "$T/a.log"; then fail "the proxy password is in the agent's log"; fi
    # no proxy ("" clears it): straight to the server, the environment ignored
    api a POST /v1/management/license/network '{"http_configuration": {"ip": ""}}' >/dev/null
    out=$(api a DELETE /v1/management/license)
    assert_eq 200 "$(status)" "removal without a proxy: $out"
    stop_agent a
}

# --- faults, grace periods and back-off ---------------------------------------------

# setup_faulty NAME: a testclock agent activated through the fault proxy
setup_faulty() {
    clock_init
    setup_online "$1" --type subscription --expiry "$(date -u -d '+60 days' +%Y-%m-%dT%H:%M:%SZ)"
    start_faultproxy fp srv
    furl=$(cat "$T/fp.url")
    faultproxy_mode fp pass
    online_agent "$1" "$tcti" "$furl" --server-timeout 2 "${@:2}"
    activate "$1" >/dev/null
    assert_eq 200 "$(status)" "activation: $(cat "$T/resp")"
}

grace_end() { api "$1" GET /licensing | jq -r .grace_period_end; }
grace_end_epoch() { date -u -d "$(grace_end "$1")" +%s; }
now_on_clock() { echo $(($(date +%s) + $(cut -d' ' -f1 "$T/clock"))); }

test_server_error_gives_2h_grace_with_backoff() {
    setup_faulty a
    faultproxy_mode fp 500
    clock_advance 86400 # the daily validation
    wait_until 10 validations_are a failed 1 || fail "no failed validation"
    end=$(grace_end_epoch a)
    near "$end" "$(metric a tpmlic_grace_period_end_timestamp_seconds)" || fail "metrics: grace end"
    left=$((end - $(now_on_clock)))
    [ "$left" -gt 7100 ] && [ "$left" -le 7200 ] || fail "grace period of $left s, not 2 h"
    assert_eq true "$(api a GET /v1/status | jq .valid)" "valid during grace"
    # back-off: 1, 2, 4, 8 minutes
    n=1
    for m in 1 2 4 8; do
        clock_advance $((m * 60 - 5))
        sleep 0.5
        assert_eq $n "$(validations a failed)" "no retry before $m min"
        clock_advance 5
        n=$((n + 1))
        wait_until 10 validations_are a failed $n || fail "no retry after $m min"
    done
    # a retry does not restart or move the grace period
    assert_eq "$end" "$(grace_end_epoch a)"
    # the grace period runs out
    clock_advance 7200
    wait_until 10 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' --unix-socket $T/a.sock -X POST http://localhost/v1/check)\" = 403 ]" ||
        fail "still allowed after the grace period"
    out=$(api a POST /v1/check)
    assert_contains "$(jq -r .error <<<"$out")" "grace period is over"
    # once over, its end stays where it was, in /licensing and in the message
    over_end=$(grace_end_epoch a)
    near "$end" "$over_end" || fail "the grace end moved when it ran out: $end -> $over_end"
    assert_contains "$(jq -r .error <<<"$out")" "since $(date -u -d "@$over_end" +%Y-%m-%dT%H:%M:%SZ)"
    clock_advance 3600
    sleep 0.3
    assert_eq "$over_end" "$(grace_end_epoch a)" "the grace end an hour after it ran out"
    grep -q "grace period of 2 h starts (server-side error)" "$T/a.log" || fail "no log of the grace start"
    wait_until 5 grep -q "the grace period is over" "$T/a.log" || fail "no log of the grace end"
    # the server answers again: valid at the next retry
    faultproxy_mode fp pass
    clock_advance $((1024 * 60))
    wait_until 10 validations_are a ok 1 || fail "no successful validation"
    out=$(api a POST /v1/check)
    assert_eq 200 "$(status)" "after a success: $out"
    assert_eq null "$(grace_end a)"
    stop_agent a
}

test_unreachable_after_success_gives_7_days_and_a_restart_does_not_renew() {
    setup_faulty a
    faultproxy_mode fp refuse
    clock_advance 86400
    wait_until 10 validations_are a failed 1 || fail "no failed validation"
    end=$(grace_end_epoch a)
    left=$((end - $(now_on_clock)))
    [ "$left" -gt $((7 * 86400 - 100)) ] && [ "$left" -le $((7 * 86400)) ] ||
        fail "grace period of $left s, not 7 days (an activation succeeded on this boot)"
    # two days later the agent restarts: the grace period goes on, it ends as before
    clock_advance $((2 * 86400))
    stop_agent a
    online_agent a "$tcti" "$furl" --server-timeout 2
    wait_until 10 validations_are a failed 1 || fail "no validation at start"
    assert_eq "$end" "$(grace_end_epoch a)" "grace end after restart"
    # and the wall clock set back a day gives nothing either
    clock_set_back 86400
    stop_agent a
    online_agent a "$tcti" "$furl" --server-timeout 2
    wait_until 10 validations_are a failed 1 || fail "no validation at start"
    new_end=$(grace_end_epoch a)
    # measured on the wall clock as it now stands, the end moved back a day
    [ "$new_end" -le $((end - 86400 + 5)) ] ||
        fail "setting the clock back moved the grace end from $end to $new_end"
    # swtpm's clock runs in real time only, so here the wall clock must make
    # up the day it was set back (test_agent_grace shows the TPM clock doing it)
    clock_advance $((6 * 86400 + 10))
    wait_until 10 bash -c "[ \"\$(curl -s --unix-socket $T/a.sock http://localhost/v1/status | jq .valid)\" = false ]" ||
        fail "still valid 7 days after the grace period began"
    stop_agent a
}

test_bad_answers_are_failures_never_successes() {
    setup_faulty a
    n=0
    for mode in garbage unsigned badsig replay hang drop; do
        faultproxy_mode fp "$mode"
        stop_agent a # validation at start
        online_agent a "$tcti" "$furl" --server-timeout 2
        wait_until 15 validations_are a failed 1 || fail "$mode: not counted as a failure: $(tail -3 "$T/a.log")"
        assert_eq 0 "$(validations a ok)" "$mode: counted as a success"
        assert_eq true "$(api a GET /v1/status | jq .valid)" "$mode: valid during grace"
        [ "$(grace_end a)" != null ] || fail "$mode: no grace period"
        n=$((n + 1))
    done
    grep -q "does not echo this request's nonce" "$T/a.log" || fail "replay not named"
    grep -q "answer is refused: bad signature" "$T/a.log" || fail "bad signature not named"
    # a server that signs with another key than the vendor's
    "$VENDOR" keygen --private "$T/other.key" --public "$T/other.pub" >/dev/null
    "$TPMLIC_SERVER" serve --db "$T/srv.db" --key "$T/other.key" --listen 127.0.0.1:0 \
        --tls-cert "$T/srv.crt" --tls-key "$T/srv.key" --port-file "$T/other.port" \
        >>"$T/other.log" 2>&1 &
    echo $! >"$T/other.pid"
    wait_until 5 test -s "$T/other.port" || fail "second server did not start"
    stop_agent a
    online_agent a "$tcti" "https://127.0.0.1:$(cat "$T/other.port")" --server-timeout 2
    wait_until 10 validations_are a failed 1 || fail "another key: not a failure"
    assert_eq 0 "$(validations a ok)" "another key: counted as a success"
    grep -q "signed by another key" "$T/a.log" || fail "another key not named"
    # the lost answer (drop): the server rotated the epoch; the agent still has
    # it pending and the next exchange is accepted
    faultproxy_mode fp pass
    stop_agent a
    online_agent a "$tcti" "$furl" --server-timeout 2
    wait_until 10 validations_are a ok 1 || fail "no success after the faults: $(tail -3 "$T/a.log")"
    assert_eq null "$(grace_end a)"
    stop_agent a
}

# --- a cloned vTPM --------------------------------------------------------------------

# Zero-touch provisioning: a license file in the image, the agent activates it
# online at its first start, retrying on the back-off schedule while the
# license server cannot be reached; services wait with tpmlicctl wait.
test_zero_touch_activation_from_the_license_file() {
    clock_init
    setup_online a --type subscription --expiry "$(date -u -d '+60 days' +%Y-%m-%dT%H:%M:%SZ)"
    start_faultproxy fp srv
    printf '{"license": "L-1", "username": "image", "company_name": "Example"}\n' >"$T/license.json"
    faultproxy_mode fp refuse
    online_agent a "$tcti" "$(cat "$T/fp.url")" --license-file "$T/license.json" --server-timeout 2
    "$B/tpmlicctl" --socket "$T/a.sock" wait --timeout 60 >"$T/wait.out" 2>&1 &
    local waiter=$!
    wait_until 10 grep -q "zero-touch activation of license ...1, attempt 1, failed" "$T/a.log" ||
        fail "no first attempt: $(tail -3 "$T/a.log")"
    sleep 0.3
    kill -0 $waiter 2>/dev/null || fail "tpmlicctl wait ended while unlicensed: $(cat "$T/wait.out")"
    # the server comes back; the next attempt is a minute later
    faultproxy_mode fp pass
    clock_advance 61
    wait_until 10 grep -q "activated from the license file" "$T/a.log" || fail "not activated"
    wait $waiter || fail "tpmlicctl wait did not succeed: $(cat "$T/wait.out")"
    assert_eq true "$(api a GET /v1/status | jq .valid)"
    grep -q "L-1" "$T/a.log" && fail "the log shows the whole license code"
    assert_eq 1 "$(activation_json | jq .active_activations)"
    # a license in the TPM wins over the file
    printf '{"license": "L-2"}\n' >"$T/license.json"
    stop_agent a
    online_agent a "$tcti" "$(cat "$T/fp.url")" --license-file "$T/license.json"
    wait_until 10 validations_are a ok 1 || fail "no validation after the restart"
    assert_eq "L-1" "$(api a GET /v1/management/license | jq -r .license_code)"
    ! grep -q "from the license file" <(sed -n '/stopping/,$p' "$T/a.log") ||
        fail "the file was used with a license in the TPM"
    stop_agent a
    # a broken file or one others can write stops the start, naming it
    printf '{"license": "bad code!"}' >"$T/license.json"
    rc=0
    timeout 30 "$TPMLICD" --config /dev/null --tcti "$tcti" --socket "$T/b.sock" \
        --state-dir "$T/a.state" --vendor-key "$T/vendor.pub" --license-file "$T/license.json" \
        >"$T/b.log" 2>&1 || rc=$?
    assert_eq 1 "$rc"
    assert_contains "$(cat "$T/b.log")" "the license file $T/license.json: Invalid license code"
    printf '{"license": "L-1"}' >"$T/license.json"
    chmod 0666 "$T/license.json"
    rc=0
    timeout 30 "$TPMLICD" --config /dev/null --tcti "$tcti" --socket "$T/b.sock" \
        --state-dir "$T/a.state" --vendor-key "$T/vendor.pub" --license-file "$T/license.json" \
        >"$T/b.log" 2>&1 || rc=$?
    assert_eq 1 "$rc"
    assert_contains "$(cat "$T/b.log")" "the license file $T/license.json can be changed by others"
}

test_two_copies_of_one_vtpm_one_is_refused() {
    setup_online a --type subscription --expiry "$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)"
    online_agent a "$tcti" "$url"
    activate a >/dev/null
    assert_eq 200 "$(status)"
    stop_agent a
    "$SWTPM_CTL" stop "$T/a.tpm" >/dev/null
    # a whole copy: the vTPM's state and the disk (the state directory)
    cp -a "$T/a.tpm" "$T/b.tpm"
    cp -a "$T/a.state" "$T/b.state"
    rm -f "$T/b.tpm/swtpm.pid" "$T/b.tpm/tpm.sock" "$T/b.tpm/ctrl.sock"
    tcti=$("$SWTPM_CTL" start "$T/a.tpm")
    tcti_b=$("$SWTPM_CTL" start "$T/b.tpm")
    online_agent a "$tcti" "$url"
    wait_until 10 validations_are a ok 1 || fail "the original did not validate"
    online_agent b "$tcti_b" "$url"
    wait_until 10 validations_are b refused 1 || fail "the copy was not refused: $(tail -3 "$T/b.log")"
    out=$(api b POST /v1/check)
    assert_eq 403 "$(status)"
    assert_contains "$(jq -r .error <<<"$out")" "refused by the license server"
    assert_eq true "$(api a GET /v1/status | jq .valid)" "the original stays valid"
    show=$(activation_json)
    assert_contains "$show" "stale_epoch"
    # the refusal is in the copy's TPM: a restart does not forget it
    stop_agent b
    start_agent b "$tcti_b"
    assert_eq false "$(api b GET /v1/status | jq .valid)"
    stop_agent a
    stop_agent b
}

run_tests
